"""The peak memory of a process tree while work runs: proportional set size, summed, sampled.

A pipeline stage runs in a child process that may start its own (vLLM's engine core, Ray-less
workers); the memory a user must have is the whole tree's. Resident set sizes double-count the
pages processes share (the parent's libraries, a forked engine), so the sum is over proportional
set sizes (PSS: each shared page split among its sharers), read from Linux's
``/proc/<pid>/smaps_rollup``. Elsewhere the watcher reports nothing rather than a wrong number.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

PROC = Path("/proc")


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


def tree_pss_bytes(pid: int) -> int:
    """The summed PSS of ``pid`` and all its descendants."""
    return sum(pss_bytes(p) for p in [pid, *descendants(pid)])


def supported() -> bool:
    """Whether this system exposes PSS (Linux 4.14+ ``smaps_rollup``)."""
    return (PROC / str(os.getpid()) / "smaps_rollup").is_file()


class PeakMemory:
    """Sample this process's tree every ``interval_s`` in a thread while the block runs.

    Example:
        with PeakMemory() as watch:
            in_fresh_process(run_sft, ...)
        watch.peak_gb  # e.g. 5.41, or None where PSS cannot be read

    Args:
        interval_s: Seconds between samples (a peak shorter than this can be missed).
        pid: The tree's root (this process by default).
    """

    def __init__(self, interval_s: float = 1.0, pid: int | None = None) -> None:
        self.interval_s = interval_s
        self.pid = pid or os.getpid()
        self.peak_bytes = 0
        self.watched = False
        """Whether any block ran under the watch with PSS readable."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        """Take one sample now; returns it (and keeps the peak)."""
        now = tree_pss_bytes(self.pid)
        self.peak_bytes = max(self.peak_bytes, now)
        return now

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> PeakMemory:
        """Start sampling (again: the peak is over every block run under this watch)."""
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
