"""``limits.die_with_parent``: a process set up by it never outlives its parent (an episode process
its zygote, a training stage its pipeline); ``limits.make_undumpable``: the zygote and its episode
processes clear their dumpable flag; ``limits._set_limit``: a limit the OS refuses to set is left as
it was, with nothing else changed."""

from __future__ import annotations

import resource
import shlex
import signal
import subprocess
import sys

import psutil
import pytest

CHILD = (
    "import os, time\n"
    "from ftrl_gym.sandbox import limits\n"
    "parent = os.getppid()\n"
    "print(limits.die_with_parent(parent + 1), limits.die_with_parent(parent), flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_process_sees_a_gone_parent_and_is_killed_with_its_parent() -> None:
    middle = subprocess.Popen(
        ["sh", "-c", f"{shlex.quote(sys.executable)} -c {shlex.quote(CHILD)} & wait"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert middle.stdout is not None
        assert middle.stdout.readline().split() == ["False", "True"]
        [child] = psutil.Process(middle.pid).children()
        middle.send_signal(signal.SIGKILL)
        middle.wait()
        child.wait(timeout=30)  # psutil.TimeoutExpired if it sleeps on
        assert not child.is_running()
    finally:
        middle.kill()


UNDUMPABLE = (
    "import ctypes\n"
    "from ftrl_gym.sandbox import limits\n"
    "libc = ctypes.CDLL(None)\n"
    "before = libc.prctl(3, 0, 0, 0, 0)\n"  # PR_GET_DUMPABLE
    "limits.make_undumpable()\n"
    "print(before, libc.prctl(3, 0, 0, 0, 0))\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_DUMPABLE is Linux's")
def test_make_undumpable_clears_the_dumpable_flag() -> None:
    assert _printed_by(UNDUMPABLE) == ["1", "0"]


REFUSED = (
    "import ctypes, resource\n"
    "from ftrl_gym.sandbox import limits\n"
    "libc = ctypes.CDLL(None)\n"
    "before = resource.getrlimit(resource.RLIMIT_AS)\n"
    "assert before[1] == resource.RLIM_INFINITY, before\n"
    # A soft limit above the hard one: setrlimit raises ValueError, which _set_limit swallows.
    "limits._set_limit(resource.RLIMIT_AS, 2 ** 40, 2 ** 30)\n"
    "print(resource.getrlimit(resource.RLIMIT_AS) == before, libc.prctl(3, 0, 0, 0, 0))\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_GET_DUMPABLE is Linux's")
def test_a_refused_limit_is_left_as_it_was_and_nothing_else_changes() -> None:
    if resource.getrlimit(resource.RLIMIT_AS)[1] != resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_AS has a finite hard limit here, so _set_limit clamps instead of failing")
    assert _printed_by(REFUSED) == ["True", "1"]


def _printed_by(script: str) -> list[str]:
    """The words ``script`` prints, run in a fresh interpreter (its limits and flags stay its own)."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return done.stdout.split()
