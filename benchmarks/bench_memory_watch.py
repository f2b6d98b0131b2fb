"""What the pipeline's peak-memory watcher costs the stage it watches.

A child process holds ``--hold-gb`` of touched memory with ``--workers`` small forked children
beside it (a vLLM engine and its sandbox workers, in miniature). The script times one PSS read and
one RSS read of the tree, then the CPU this process spends over ``--window-s`` seconds watching the
tree two ways: a PSS read every second (what ``PeakMemory`` did before it gated PSS reads on resident
size) and ``PeakMemory`` as it is. With ``--grow-mb-per-s`` the child keeps growing during the
windows, so the watcher has new highs to read.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import threading
import time

from ftrl_gym.agents.training.memory_watch import PeakMemory, tree_pss_bytes, tree_rss_bytes

HOLDER = """
import os, sys, time
hold, workers, grow = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
block = bytearray(hold)
block[::4096] = b"x" * len(block[::4096])
for _ in range(workers):
    if os.fork() == 0:
        sys.stdin.readline()
        os._exit(0)
print("ready", flush=True)
extra = []
while True:
    time.sleep(1)
    if grow:
        piece = bytearray(grow)
        piece[::4096] = b"x" * len(piece[::4096])
        extra.append(piece)
"""
"""The watched tree's root: touches ``hold`` bytes, forks ``workers`` idle children, then grows by
``grow`` bytes a second."""


def cpu_s() -> float:
    """This process's user plus system CPU seconds (its threads included, children not)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_reads(read: object, pid: int, reads: int) -> tuple[float, float]:
    """Median wall seconds and mean CPU seconds of ``read(pid)`` over ``reads`` calls."""
    walls = []
    cpu_before = cpu_s()
    for _ in range(reads):
        started = time.perf_counter()
        read(pid)  # type: ignore[operator]
        walls.append(time.perf_counter() - started)
    return statistics.median(walls), (cpu_s() - cpu_before) / reads


def every_second_pss(pid: int, window_s: float) -> int:
    """The former rule: a tree PSS read every second for ``window_s``; returns the reads made."""
    stop = threading.Event()
    reads = 0

    def run() -> None:
        nonlocal reads
        while not stop.wait(1.0):
            tree_pss_bytes(pid)
            reads += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(window_s)
    stop.set()
    thread.join()
    return reads


def gated_watch(pid: int, window_s: float) -> int:
    """``PeakMemory`` (its defaults) over the tree for ``window_s``; returns the PSS reads made."""
    with PeakMemory(pid=pid) as watch:
        time.sleep(window_s)
    return watch.pss_reads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold-gb", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--grow-mb-per-s", type=float, default=0.0)
    parser.add_argument("--window-s", type=float, default=20.0)
    parser.add_argument("--reads", type=int, default=20)
    args = parser.parse_args(argv)

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(int(args.hold_gb * 1e9)), str(args.workers),
         str(int(args.grow_mb_per_s * 1e6))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        if holder.stdout is None or holder.stdout.readline().strip() != "ready":
            raise SystemExit("the holder process did not start")
        pss_wall, pss_cpu = time_reads(tree_pss_bytes, holder.pid, args.reads)
        rss_wall, rss_cpu = time_reads(tree_rss_bytes, holder.pid, args.reads)
        rows = []
        for name, watch in (("PSS every 1 s (before)", every_second_pss), ("PeakMemory", gated_watch)):
            before = cpu_s()
            reads = watch(holder.pid, args.window_s)
            share = (cpu_s() - before) / args.window_s
            rows.append((name, reads, share))
    finally:
        holder.kill()
        holder.wait()

    print(
        f"tree: {args.hold_gb:g} GB held, {args.workers} forked workers, growing "
        f"{args.grow_mb_per_s:g} MB/s; {args.reads} reads each, windows of {args.window_s:g} s\n"
    )
    print("| read of the tree | median ms | CPU ms per read |")
    print("|---|---:|---:|")
    print(f"| PSS (smaps_rollup) | {pss_wall * 1e3:.1f} | {pss_cpu * 1e3:.1f} |")
    print(f"| RSS (statm) | {rss_wall * 1e3:.2f} | {rss_cpu * 1e3:.2f} |\n")
    print("| watcher | PSS reads in the window | CPU share of one core |")
    print("|---|---:|---:|")
    for name, reads, share in rows:
        print(f"| {name} | {reads} | {share * 100:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
