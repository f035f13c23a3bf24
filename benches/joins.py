#!/usr/bin/env python3
"""Join orders with real `peerkeeper node` processes on loopback (issue 18).

N processes, one seed, every other node knowing only the seed, the default config but
the targets (--min 2 --expected 4 --max 6, as ../shared/hooks/before-stop runs them).
Connections are counted from outside with `ss` (established TCP sockets per process),
as ../shared/tools/converge.py does. Each scenario reports, per run, how long after the
last (re)start every node had at least K connections, and the median over the runs:

  together     every node, the seed first, started in one go
  seed-last    the others first, the seed --seed-delay later (converge.py --seed-last)
  random       every node, the seed anywhere, in a random order --stagger apart
  rolling      all started together and converged; then each node in turn stopped
               (SIGTERM) and started again on its port, the next once every node has K
               again; measured after the last restart (and the slowest restart reported).
               Every node has a --data-dir (a restarted node is a deployed one: its pool
               and key are kept); with --no-data-dir the restarted seed knows nobody, and
               nobody in range dials it: it stays at 0 (what a data directory is for)

Usage: python3 benches/joins.py [--bin target/release/peerkeeper] [--runs 5]
           [--scenarios together,seed-last,random,rolling] [--n 10] [--k 2]
Prints one JSON line per run and one summary line per scenario. Loopback only; every
process it starts is stopped before it exits.
"""
import argparse
import json
import random
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--bin", default="target/release/peerkeeper")
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("--scenarios", default="together,seed-last,random,rolling")
ap.add_argument("--n", type=int, default=10)
ap.add_argument("--k", type=int, default=2)
ap.add_argument("--timeout", type=float, default=60, help="give up on one wait after this long (s)")
ap.add_argument("--stagger", type=float, default=0.5, help="seconds between starts (random)")
ap.add_argument("--seed-delay", type=float, default=3.0, help="seconds the seed starts after the rest (seed-last)")
ap.add_argument("--args", default="--min 2 --expected 4 --max 6 --status-interval 0s")
ap.add_argument("--no-data-dir", action="store_true", help="rolling: restart the nodes without a data directory")
a = ap.parse_args()


def free_ports(n):
    """n ports free now (the OS's choice: fixed ranges collide with other runs on the machine)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Net:
    def __init__(self, data=None):
        self.ports = free_ports(a.n)
        self.data = data  # a directory for the nodes' data directories, or None
        self.procs = {}  # index -> Popen; index 0 is the seed
        self.logs = {}  # index -> its stderr

    def cmd(self, i):
        c = f"{a.bin} node --listen 127.0.0.1:{self.ports[i]} {a.args}"
        if i > 0:
            c += f" --peer 127.0.0.1:{self.ports[0]}"
        if self.data:
            c += f" --data-dir {self.data}/node-{i}"
        return shlex.split(c)

    def start(self, i):
        # stderr kept (the last lines say why, should a node exit)
        log = tempfile.TemporaryFile()
        self.procs[i] = subprocess.Popen(self.cmd(i), stdout=subprocess.DEVNULL, stderr=log)
        self.logs[i] = log
        return time.monotonic()

    def why(self, i):
        log = self.logs[i]
        log.seek(0)
        return log.read().decode(errors="replace").strip().splitlines()[-3:]

    def stop(self, i):
        p = self.procs.pop(i)
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def counts(self):
        out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout
        by_pid = {p.pid: 0 for p in self.procs.values()}
        for line in out.splitlines():
            for pid in re.findall(r"pid=(\d+),", line):
                if int(pid) in by_pid:
                    by_pid[int(pid)] += 1
        return [by_pid[self.procs[i].pid] for i in sorted(self.procs)]

    def wait_all(self, since):
        """Seconds from `since` until every process has >= k connections (None: timeout)."""
        while time.monotonic() - since < a.timeout:
            c = self.counts()
            if len(c) == a.n and min(c) >= a.k:
                return time.monotonic() - since
            exited = [i for i, p in self.procs.items() if p.poll() is not None]
            if exited:
                raise SystemExit(f"node(s) {exited} exited: {[self.why(i) for i in exited]}")
            time.sleep(0.1)
        return None

    def close(self):
        for i in list(self.procs):
            self.stop(i)


def run(scenario, r):
    data = tempfile.mkdtemp(prefix="pk-joins-") if scenario == "rolling" and not a.no_data_dir else None
    net = Net(data)
    rng = random.Random(r)
    extra = {}
    try:
        if scenario == "together":
            for i in range(a.n):
                last = net.start(i)
        elif scenario == "seed-last":
            for i in range(1, a.n):
                net.start(i)
            time.sleep(a.seed_delay)  # the join schedule under test
            last = net.start(0)
        elif scenario == "random":
            order = list(range(a.n))
            rng.shuffle(order)
            extra["order"] = order
            for j, i in enumerate(order):
                if j:
                    time.sleep(a.stagger)  # the join schedule under test
                last = net.start(i)
        elif scenario == "rolling":
            t0 = time.monotonic()
            for i in range(a.n):
                net.start(i)
            if net.wait_all(t0) is None:
                return {"scenario": scenario, "run": r, "after_last_start_s": None, "why": "never converged before the restarts"}
            each = []
            for i in range(a.n):
                net.stop(i)
                last = net.start(i)
                took = net.wait_all(last)
                each.append(None if took is None else round(took, 2))
                if took is None:
                    break
            extra["per_restart_s"] = each
            extra["slowest_restart_s"] = None if None in each else max(each)
            return {"scenario": scenario, "run": r, "after_last_start_s": each[-1] if len(each) == a.n else None, **extra}
        else:
            raise SystemExit(f"unknown scenario {scenario}")
        took = net.wait_all(last)
        return {"scenario": scenario, "run": r, "after_last_start_s": None if took is None else round(took, 2), **extra}
    finally:
        net.close()
        if data:
            subprocess.run(["rm", "-rf", data])


for scenario in a.scenarios.split(","):
    times = []
    for r in range(a.runs):
        res = run(scenario, r)
        print(json.dumps(res), flush=True)
        times.append(res["after_last_start_s"])
    done = [t for t in times if t is not None]
    print(json.dumps({
        "scenario": scenario, "n": a.n, "k": a.k, "runs": a.runs,
        "median_after_last_start_s": round(statistics.median(done), 2) if len(done) == len(times) else None,
        "max_after_last_start_s": max(done) if done else None,
        "converged_runs": len(done),
    }), flush=True)
sys.exit(0)
