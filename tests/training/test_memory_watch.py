"""The process-tree peak memory watcher against a child that holds a known number of bytes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ftrl_gym.agents.training.memory_watch import PeakMemory, descendants, supported, tree_pss_bytes

pytestmark = pytest.mark.skipif(not supported(), reason="needs Linux /proc/<pid>/smaps_rollup")

HOLD = 300_000_000
"""Bytes the child writes (every page touched, so all of them are resident and its own)."""


def test_the_peak_counts_a_childs_memory_once() -> None:
    script = (
        f"import sys, time; b = bytearray({HOLD}); b[::4096] = b'x' * len(b[::4096]); "
        "print('ready', flush=True); time.sleep(2)"
    )
    with PeakMemory(interval_s=0.1) as watch:
        baseline = watch.peak_bytes
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        assert child.pid in descendants(watch.pid)
        held = tree_pss_bytes(watch.pid)
        child.wait()
    # the child's 300 MB plus its interpreter (about 10 MB), counted once: not 2 x 300 MB
    assert HOLD < held - baseline < HOLD + 60_000_000
    assert watch.peak_bytes >= held
    assert watch.peak_gb == round(watch.peak_bytes / 1e9, 2)
    assert watch.peak_gb < (baseline + 2 * HOLD) / 1e9


def test_a_watch_that_never_ran_reports_no_peak() -> None:
    assert PeakMemory().peak_gb is None
