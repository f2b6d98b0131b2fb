"""Resource limits an episode process puts on itself, and the fallback isolation of a zygote that runs
without the OS boundary."""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import sys
import tempfile
import time

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
_CPU_HARD = resource.getrlimit(resource.RLIMIT_CPU)[1]
_libc = ctypes.CDLL(None, use_errno=True)
MAX_OPEN_FILES = 16
"""``RLIMIT_NOFILE`` of an episode process: its socket and the standard streams, nothing to spare."""


def unshare_network() -> bool:
    """Move into an empty network namespace if the OS lets this process do it; report success (used only
    where bubblewrap is unavailable)."""
    try:
        unshare = _libc.unshare
    except AttributeError:  # not Linux
        return False
    return any(unshare(flags) == 0 for flags in (CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET))


def die_with_parent(parent: int) -> bool:
    """Have the kernel send this process SIGKILL when its parent dies (Linux's ``PR_SET_PDEATHSIG``;
    elsewhere nothing is set).

    Args:
        parent: The parent's pid, read before this call, so a parent that died in between is seen.

    Returns:
        False when the parent is already gone (the caller should exit), else True.
    """
    if not sys.platform.startswith("linux"):
        return True
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return os.getppid() == parent


def make_undumpable() -> None:
    """Clear this process's dumpable flag (Linux's ``PR_SET_DUMPABLE``; elsewhere nothing is set): no
    core dumps, and processes of the same uid can neither ptrace it nor read its ``/proc/<pid>/mem``."""
    if sys.platform.startswith("linux"):
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def enter_empty_directory() -> None:
    """Make the working directory an empty directory that no longer exists (used only where bubblewrap
    is unavailable; inside the boundary the working directory is the empty ``/tmp``)."""
    path = tempfile.mkdtemp(prefix="ftrl-sandbox-")
    os.chdir(path)
    os.rmdir(path)


def _set_limit(kind: int, soft: int, hard: int | None = None) -> None:
    """Lower one rlimit; a limit the OS refuses to lower is left as it was."""
    _, current_hard = resource.getrlimit(kind)
    hard = current_hard if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard) if hard != resource.RLIM_INFINITY else current_hard
        soft = min(soft, hard)
    try:
        resource.setrlimit(kind, (soft, hard))
    except (ValueError, OSError):
        pass


def harden(memory_mb: int) -> None:
    """Apply an episode process's limits: no files written, few descriptors, no children, no core
    dumps, bounded memory.

    Args:
        memory_mb: the address-space limit.
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails instead of killing
    os.environ.clear()
    _set_limit(resource.RLIMIT_CORE, 0, 0)
    _set_limit(resource.RLIMIT_FSIZE, 0, 0)
    _set_limit(resource.RLIMIT_NOFILE, MAX_OPEN_FILES, MAX_OPEN_FILES)
    _set_limit(resource.RLIMIT_NPROC, 0, 0)
    memory = memory_mb * 1024 * 1024
    _set_limit(resource.RLIMIT_AS, memory, memory)


class CpuBudget:
    """The process's ``RLIMIT_CPU``: a backstop that stops a process whose host can no longer kill it.

    The soft limit is kept at least ``seconds`` of CPU ahead of what the process has used, moved in
    steps of ``slack`` seconds. The single-threaded process cannot use more CPU than wall-clock time, so
    most calls check the budget against the (cheap) monotonic clock and make no system call.
    """

    def __init__(self, slack: float = 30.0) -> None:
        self.slack = slack
        self.soft = 0.0
        self._used_at_set = 0.0
        self._time_at_set = time.monotonic()

    def allow(self, seconds: float) -> None:
        """Make sure the process may use ``seconds`` more CPU time before the kernel stops it."""
        if self._used_at_set + (time.monotonic() - self._time_at_set) + seconds <= self.soft:
            return
        used = time.process_time()
        soft = math.ceil(used + seconds + self.slack)
        if _CPU_HARD != resource.RLIM_INFINITY:
            soft = min(soft, _CPU_HARD)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, _CPU_HARD))
        self.soft, self._used_at_set, self._time_at_set = soft, used, time.monotonic()
