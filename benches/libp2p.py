#!/usr/bin/env python3
"""peerkeeper inside rust-libp2p, side by side with libp2p's own means (issue 19).

Starts N example libp2p nodes on loopback, one seed and the rest knowing only the seed,
for each implementation and join order, and measures from outside the processes:

  peerkeeper   peerkeeper-libp2p/examples/node.rs (the peerkeeper-libp2p behaviour)
  kad          peerkeeper-libp2p/examples/kad_node.rs (identify + Kademlia bootstrap +
               dial on discovery + connection-limits: rust-libp2p's own means)
  kad-nolimit  the same without connection-limits (--no-limits): dials still stop at
               --max, inbound connections are not refused

  seed-first   the seed, then every other node --stagger (1 s) apart
  seed-last    every other node at once, then the seed --seed-delay (3 s) later

Every process runs with --min 3 --expected 6 --max 10 (min_threshold 4); connections are
established TCP sockets per process, counted with `ss` as ../shared/tools/converge.py
does, sampled every 0.25 s for --window seconds after the last start. Reported per run:

  all_at_min_s    seconds from the last start until every node had >= --k (4) connections
                  (null: never within the window)
  components      connected components of the overlay at the end (sockets matched end to end)
  dials           dials made in all (the processes' own count of libp2p Dialing events)
  above_max       the most connections any node held above --max, and the node-seconds
                  spent above it
  final           min / median / max connections at the end

Usage: python3 benches/libp2p.py [--n 20] [--runs 3] [--impls peerkeeper,kad,kad-nolimit]
           [--orders seed-first,seed-last] [--window 30] [--build]
Builds nothing unless --build (then `cargo build --release -p peerkeeper-libp2p --examples`).
Prints one JSON line per run, then a Markdown table of medians. Every process it starts is
stopped before it exits.
"""
import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--n", type=int, default=20)
ap.add_argument("--k", type=int, default=4)
ap.add_argument("--max", type=int, default=10)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--impls", default="peerkeeper,kad,kad-nolimit")
ap.add_argument("--orders", default="seed-first,seed-last")
ap.add_argument("--window", type=float, default=30.0)
ap.add_argument("--stagger", type=float, default=1.0)
ap.add_argument("--seed-delay", type=float, default=3.0)
ap.add_argument("--dir", default="target/release/examples")
ap.add_argument("--build", action="store_true")
ap.add_argument("--logs", default=None, help="keep each node's stderr in this directory (RUST_LOG applies)")
a = ap.parse_args()

BIN = {"peerkeeper": "node", "kad": "kad_node", "kad-nolimit": "kad_node"}
EXTRA = {"kad-nolimit": ["--no-limits"]}


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def sockets():
    """(local, peer, pid) for every established TCP socket with a known process."""
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        m = re.search(r"pid=(\d+),", line)
        if m:
            rows.append((f[2], f[3], int(m.group(1))))
    return rows


def components(pids, rows):
    owner = {local: pid for local, _, pid in rows}
    parent = {p: p for p in pids}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for local, peer, pid in rows:
        other = owner.get(peer)
        if pid in parent and other in parent:
            parent[find(pid)] = find(other)
    return len({find(p) for p in pids})


def run(impl, order):
    ports = free_ports(a.n)
    exe = f"{a.dir}/{BIN[impl]}"
    common = ["--min", "3", "--expected", "6", "--max", str(a.max), "--json", "--status-interval", "0"]
    procs = {}

    def start(i):
        cmd = [exe, "--listen", f"/ip4/127.0.0.1/tcp/{ports[i]}"] + common + EXTRA.get(impl, [])
        if i != 0:
            cmd += ["--peer", f"/ip4/127.0.0.1/tcp/{ports[0]}"]
        err = open(f"{a.logs}/{impl}-{order}-{i}.err", "w") if a.logs else subprocess.DEVNULL
        procs[i] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)

    t0 = time.monotonic()
    samples = []
    above_s = 0.0
    most_above = 0
    try:
        if order == "seed-first":
            start(0)
            for i in range(1, a.n):
                time.sleep(a.stagger)
                start(i)
        else:
            for i in range(1, a.n):
                start(i)
            time.sleep(a.seed_delay)
            start(0)
        t_last = time.monotonic()
        at_min = None
        last = time.monotonic()
        while time.monotonic() - t_last < a.window:
            rows = sockets()
            c = {p.pid: 0 for p in procs.values()}
            for _, _, pid in rows:
                if pid in c:
                    c[pid] += 1
            now = time.monotonic()
            dt = now - last
            last = now
            over = [max(0, v - a.max) for v in c.values()]
            most_above = max(most_above, max(over))
            above_s += dt * sum(1 for o in over if o > 0)
            if at_min is None and min(c.values()) >= a.k:
                at_min = now - t_last
            samples.append(c)
            time.sleep(0.25)
        rows = sockets()
        comps = components([p.pid for p in procs.values()], rows)
        final = sorted(samples[-1].values())
        exited = sorted(i for i, p in procs.items() if p.poll() is not None)
        alone = sorted(i for i, p in procs.items() if samples[-1][p.pid] == 0)
        if a.logs and alone:
            every = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True).stdout
            with open(f"{a.logs}/{impl}-{order}-ss.txt", "w") as f:
                for i in alone:
                    f.write(f"node {i} pid {procs[i].pid}\n")
                    f.writelines(l + "\n" for l in every.splitlines() if f"pid={procs[i].pid}," in l)
    finally:
        for p in procs.values():
            p.terminate()
        outs = {}
        for i, p in procs.items():
            try:
                outs[i], _ = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                outs[i], _ = p.communicate()
    if a.logs:
        for i, o in outs.items():
            with open(f"{a.logs}/{impl}-{order}-{i}.out", "w") as f:
                f.write(o or "")
    dials = 0
    for o in outs.values():
        lines = [l for l in o.splitlines() if l.startswith("{")]
        if lines:
            dials += json.loads(lines[-1]).get("dials", 0)
    return {
        "impl": impl, "order": order, "n": a.n, "k": a.k, "max": a.max,
        "all_at_min_s": None if at_min is None else round(at_min, 2),
        "components": comps, "dials": dials,
        "above_max": {"most": most_above, "node_seconds": round(above_s, 1)},
        "final": {"min": final[0], "median": statistics.median(final), "max": final[-1]},
        "window_s": a.window, "exited": exited, "alone": alone,
    }


if a.build:
    subprocess.run(["cargo", "build", "--release", "-p", "peerkeeper-libp2p", "--examples"], check=True)
results = []
for order in a.orders.split(","):
    for impl in a.impls.split(","):
        for _ in range(a.runs):
            r = run(impl, order)
            print(json.dumps(r), flush=True)
            results.append(r)

print()
print("| order | stack | every node at its minimum (s) | components | dials | most above max (node-seconds) | final min/median/max |")
print("|---|---|---|---|---|---|---|")
for order in a.orders.split(","):
    for impl in a.impls.split(","):
        rs = [r for r in results if r["impl"] == impl and r["order"] == order]
        ts = [r["all_at_min_s"] for r in rs]
        reached = [t for t in ts if t is not None]
        t = "never" if not reached else f"{statistics.median(reached):.2f}" + ("" if len(reached) == len(ts) else f" ({len(reached)}/{len(ts)} runs)")
        comps = "/".join(str(r["components"]) for r in rs)
        dials = statistics.median(r["dials"] for r in rs)
        above = f'{max(r["above_max"]["most"] for r in rs)} ({statistics.median(r["above_max"]["node_seconds"] for r in rs)})'
        fin = "; ".join(f'{r["final"]["min"]}/{r["final"]["median"]}/{r["final"]["max"]}' for r in rs)
        name = {"peerkeeper": "peerkeeper-libp2p", "kad": "Kademlia + connection-limits",
                "kad-nolimit": "Kademlia, no connection-limits"}[impl]
        print(f"| {order} | {name} | {t} | {comps} | {dials:.0f} | {above} | {fin} |")
