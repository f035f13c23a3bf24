#!/usr/bin/env python3
"""Delivery coverage and latency of examples/gossip.rs across N processes on 127.0.0.1.

Starts N gossip processes (default 20) on ports the OS picks: the first knows nobody, the
others `--peer FIRST`. Waits until every node reports `peers>=3` (fewer when N is small)
and the first reports N-1. Then writes M lines (default 500) at a fixed pace (default
100 lines/s), round-robin over the nodes' stdins, each carrying a unique id, and reads
every node's stdout (`RECV <author-short> <line>`) in threads, timestamping each line.

Reports coverage (distinct lines received by nodes other than their writer / (M x (N-1))),
p50/p99/max delivery latency in ms (receive time - write time, both taken in this process,
so they include the pipes), and duplicates (a line printed twice by one node; must be 0).
Prints one JSON object and a markdown table row.

    cargo build --release --example gossip
    python3 benches/gossip_latency.py [--nodes 20] [--lines 500] [--rate 100]

Standard library only. Every process is killed at the end, also on error or Ctrl-C.
"""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BIN = os.path.join(ROOT, "target", "release", "examples", "gossip")


class Node:
    """One gossip process, its reader threads and what it said."""

    def __init__(self, index, binary, extra_args, env):
        self.index = index
        self.listen = None
        self.peer_id = None
        self.peers = 0
        self.recv = []  # (monotonic time, author-short, line), appended by the reader
        self.stderr_tail = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            bufsize=0,
        )
        self.threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _read_stdout(self):
        clock = time.monotonic
        out = self.recv
        for raw in self.proc.stdout:
            at = clock()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("RECV "):
                parts = line.split(" ", 2)
                if len(parts) == 3:
                    out.append((at, parts[1], parts[2]))

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("gossip listen="):
                fields = dict(f.split("=", 1) for f in line[len("gossip "):].split() if "=" in f)
                self.listen = fields.get("listen")
                self.peer_id = fields.get("peer_id")
                self.ready.set()
            elif line.startswith("peers="):
                try:
                    self.peers = int(line[len("peers="):].strip())
                except ValueError:
                    pass
            else:
                self.stderr_tail = (self.stderr_tail + [line])[-20:]
        self.ready.set()  # the process ended: whoever waits learns it

    def write(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def percentile(sorted_values, p):
    """Nearest-rank percentile of a sorted list (None if empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def fail(nodes, what):
    lines = [f"error: {what}"]
    for n in nodes:
        code = n.proc.poll()
        lines.append(
            f"  node {n.index}: listen={n.listen} peers={n.peers} received={len(n.recv)}"
            + (f" exited={code}" if code is not None else "")
        )
        for l in n.stderr_tail[-3:]:
            lines.append(f"    {l}")
    raise RuntimeError("\n".join(lines))


def wait_until(nodes, what, cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        for n in nodes:
            if n.proc.poll() is not None:
                fail(nodes, f"node {n.index} exited ({n.proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            fail(nodes, f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def run(args, nodes):
    binary = args.bin
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        sys.exit(
            f"{binary} is missing: build it first with\n"
            f"    cargo build --release --example gossip"
        )
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    n = args.nodes
    started = time.monotonic()

    first = Node(0, binary, [], env)
    nodes.append(first)
    if not first.ready.wait(args.timeout) or first.listen is None:
        fail(nodes, "the first node did not say where it listens")
    for i in range(1, n):
        nodes.append(Node(i, binary, ["--peer", first.listen], env))
    for node in nodes:
        if not node.ready.wait(args.timeout) or node.listen is None:
            fail(nodes, f"node {node.index} did not say where it listens")
    want = min(3, n - 1)
    wait_until(
        nodes,
        f"every node at peers>={want} and the first at {n - 1}",
        lambda: first.peers == n - 1 and all(x.peers >= want for x in nodes),
        args.timeout,
    )
    converged_s = time.monotonic() - started
    peers_at_start = [x.peers for x in nodes]

    # The lines: line k goes to node k % n at start + k / rate.
    written = {}  # id -> (writer index, write time)
    interval = 1.0 / args.rate
    t0 = time.monotonic() + 0.1
    late = 0.0
    for k in range(args.lines):
        due = t0 + k * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            late = max(late, now - due)
        w = k % n
        lid = f"m{k:06d}"
        written[lid] = (w, time.monotonic())
        nodes[w].write(f"{lid} from node {w}")
    write_end = time.monotonic()

    # Wait for every expected receipt, or until nothing has arrived for `--settle` s.
    expected = args.lines * (n - 1)
    last_total, last_change = -1, time.monotonic()
    while True:
        total = sum(len(x.recv) for x in nodes)
        if total >= expected:
            break
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > args.settle:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # a duplicate printed just after the last expected line is counted too

    delivered = 0
    duplicates = 0
    foreign = 0  # lines with an id we did not write (should not happen)
    own = 0  # a node printing its own line (the example never does)
    latencies = []
    per_node_missing = []
    for x in nodes:
        seen = set()
        for at, _author, line in list(x.recv):
            lid = line.split(" ", 1)[0]
            if lid not in written:
                foreign += 1
                continue
            writer, wrote_at = written[lid]
            if writer == x.index:
                own += 1
                continue
            if lid in seen:
                duplicates += 1
                continue
            seen.add(lid)
            delivered += 1
            latencies.append((at - wrote_at) * 1000.0)
        expected_here = sum(1 for w, _ in written.values() if w != x.index)
        per_node_missing.append(expected_here - len(seen))
    latencies.sort()
    still_running = sum(1 for x in nodes if x.proc.poll() is None)
    peers_at_end = [x.peers for x in nodes]

    def r(v):
        return None if v is None else round(v, 2)

    result = {
        "nodes": n,
        "lines": args.lines,
        "rate": args.rate,
        "expected": expected,
        "delivered": delivered,
        "coverage": round(delivered / expected, 6) if expected else None,
        "p50_ms": r(percentile(latencies, 50)),
        "p99_ms": r(percentile(latencies, 99)),
        "max_ms": r(latencies[-1] if latencies else None),
        "duplicates": duplicates,
        "own_lines_printed": own,
        "unknown_lines": foreign,
        "missing_per_node": per_node_missing,
        "peers_at_start": peers_at_start,
        "peers_at_end": peers_at_end,
        "processes_running_at_end": still_running,
        "converged_s": round(converged_s, 2),
        "write_s": round(write_end - t0, 2),
        "writer_max_late_ms": round(late * 1000.0, 2),
    }
    print(json.dumps(result))
    print()
    print("| nodes | lines | rate (lines/s) | coverage | p50 (ms) | p99 (ms) | duplicates |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {n} | {args.lines} | {args.rate:g} | {100.0 * delivered / expected:.2f} % "
        f"| {result['p50_ms']} | {result['p99_ms']} | {duplicates} |"
    )
    return 0 if duplicates == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=20, help="gossip processes (default 20)")
    p.add_argument("--lines", type=int, default=500, help="lines written (default 500)")
    p.add_argument("--rate", type=float, default=100.0, help="lines per second (default 100)")
    p.add_argument("--bin", default=DEFAULT_BIN, help="the gossip example's binary")
    p.add_argument("--timeout", type=float, default=90.0,
                   help="seconds to wait for the processes to start and connect")
    p.add_argument("--settle", type=float, default=10.0,
                   help="stop waiting for receipts after this many seconds without one")
    args = p.parse_args()
    if args.nodes < 2 or args.lines < 1 or args.rate <= 0:
        p.error("--nodes must be at least 2, --lines at least 1, --rate positive")

    nodes = []

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        code = run(args, nodes)
    except RuntimeError as e:
        print(str(e), file=sys.stderr)
        code = 1
    finally:
        for x in nodes:
            x.kill()
    sys.exit(code)


if __name__ == "__main__":
    main()
