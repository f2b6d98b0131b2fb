"""The peak memory of a process tree while work runs: proportional set size, summed, sampled.

A pipeline stage runs in a child process that may start its own (vLLM's engine core, Ray-less
workers); the memory a user must have is the whole tree's. Resident set sizes double-count the
pages processes share (the parent's libraries, a forked engine), so the sum is over proportional
set sizes (PSS: each shared page split among its sharers), read from Linux's
``/proc/<pid>/smaps_rollup``. Elsewhere the watcher reports nothing rather than a wrong number.

Reading ``smaps_rollup`` walks the process's page tables under its memory lock: about 0.1 s of
system time for a 4 GB vLLM engine on the 2-core machine, so a PSS read every second took half a
core from the stage it measured. The watcher reads the tree's resident sizes every tick instead
(``/proc/<pid>/statm``, a counter read) and PSS only when their sum has risen by ``rss_margin``
from its low since the last PSS read (the tree's PSS cannot rise unless some of its processes'
resident pages do), and never more often than keeps PSS reads under ``max_overhead`` of the time.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Self

PROC = Path("/proc")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def descendants(pid: int) -> list[int]:
    """``pid``'s child processes and theirs, from ``/proc/<pid>/task/*/children``."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        for task in (PROC / str(current) / "task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found += children
            pending += children
    return found


def pss_bytes(pid: int) -> int:
    """``pid``'s proportional set size in bytes (0 when it is gone or unreadable)."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    return [pid, *descendants(pid)]


def tree_pss_bytes(pid: int) -> int:
    """The summed PSS of ``pid`` and all its descendants."""
    return sum(pss_bytes(p) for p in tree_pids(pid))


def rss_bytes(pid: int) -> int:
    """``pid``'s resident set size in bytes from ``/proc/<pid>/statm`` (0 when it is gone)."""
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def tree_rss_bytes(pid: int) -> int:
    """The summed RSS of ``pid`` and all its descendants (shared pages counted once per sharer)."""
    return sum(rss_bytes(p) for p in tree_pids(pid))


def pss_read_gap_s(read_s: float, max_overhead: float) -> float:
    """Seconds to wait after a PSS read that took ``read_s`` so that reads fill at most
    ``max_overhead`` of the time: ``read_s * (1 / max_overhead - 1)``, e.g. 0.1 s at 5 % -> 1.9 s."""
    return read_s * (1.0 / max_overhead - 1.0)


def supported() -> bool:
    """Whether this system exposes PSS (Linux 4.14+ ``smaps_rollup``)."""
    return (PROC / str(os.getpid()) / "smaps_rollup").is_file()


class PeakMemory:
    """Watch this process's tree in a thread while the block runs; keep its peak PSS.

    Example:
        with PeakMemory() as watch:
            in_fresh_process(run_sft, ...)
        watch.peak_gb  # e.g. 5.41, or None where PSS cannot be read

    The peak can miss a rise of under ``rss_margin`` bytes since the last PSS read, and a peak
    that comes and goes within a tick or a read gap.

    Args:
        interval_s: Seconds between resident-size checks.
        pid: The tree's root (this process by default).
        rss_margin: Bytes the tree's summed RSS must rise by to warrant a PSS read.
        max_overhead: The largest fraction of wall time PSS reads may take (see ``pss_read_gap_s``).
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        pid: int | None = None,
        rss_margin: int = 32 * 2**20,
        max_overhead: float = 0.05,
    ) -> None:
        self.interval_s = interval_s
        self.pid = pid or os.getpid()
        self.rss_margin = rss_margin
        self.max_overhead = max_overhead
        self.peak_bytes = 0
        self.pss_reads = 0
        """How many PSS reads of the tree the watch made."""
        self.rss_checks = 0
        """How many resident-size checks of the tree the watch made."""
        self.watched = False
        """Whether any block ran under the watch with PSS readable."""
        self._rss_low = 0
        self._next_read = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        """Read the tree's PSS now; returns it (and keeps the peak)."""
        pids = tree_pids(self.pid)
        return self._read_pss(pids, sum(rss_bytes(p) for p in pids))

    def _read_pss(self, pids: list[int], rss: int) -> int:
        """Read the PSS of ``pids`` (the tree, whose summed RSS is ``rss``); keep the peak, restart
        the RSS low mark there and set the next read's earliest time."""
        started = time.perf_counter()
        self._rss_low = rss
        now = sum(pss_bytes(p) for p in pids)
        self.pss_reads += 1
        self.peak_bytes = max(self.peak_bytes, now)
        took = time.perf_counter() - started
        self._next_read = time.perf_counter() + pss_read_gap_s(took, self.max_overhead)
        return now

    def check(self) -> bool:
        """One tick: read the tree's RSS; read PSS when it has risen by ``rss_margin`` from its low
        since the last PSS read and the read gap has passed (a rise seen during the gap waits for
        it). Returns whether PSS was read."""
        pids = tree_pids(self.pid)
        rss = sum(rss_bytes(p) for p in pids)
        self.rss_checks += 1
        self._rss_low = min(self._rss_low, rss)
        if rss <= self._rss_low + self.rss_margin or time.perf_counter() < self._next_read:
            return False
        self._read_pss(pids, rss)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def __enter__(self) -> Self:
        """Start watching (again: the peak is over every block run under this watch)."""
        if supported():
            self.watched = True
            self._stop.clear()
            self.sample()
            self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self.sample()

    @property
    def peak_gb(self) -> float | None:
        """The peak in GB (1e9 bytes), rounded to 0.01; None when nothing was watched."""
        return round(self.peak_bytes / 1e9, 2) if self.watched else None
