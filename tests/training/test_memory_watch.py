"""The process-tree peak memory watcher against a child that holds a known number of bytes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from ftrl_gym.agents.training.memory_watch import (
    PeakMemory,
    descendants,
    pss_read_gap_s,
    supported,
    tree_pss_bytes,
    tree_rss_bytes,
)

pytestmark = pytest.mark.skipif(not supported(), reason="needs Linux /proc/<pid>/smaps_rollup")

HOLD = 300_000_000
"""Bytes the child writes (every page touched, so all of them are resident and its own)."""


_HOLDER = (
    f"import sys, time; b = bytearray({HOLD}); b[::4096] = b'x' * len(b[::4096]); "
    "print('ready', flush=True); sys.stdin.readline()"
)


def _holder() -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "ready"
    return child


def test_the_peak_counts_a_childs_memory_once() -> None:
    with PeakMemory(interval_s=0.1, max_overhead=0.5) as watch:
        baseline = watch.peak_bytes
        child = _holder()
        try:
            assert child.pid in descendants(watch.pid)
            held = tree_pss_bytes(watch.pid)
            deadline = time.monotonic() + 30  # the child's rise of 300 MB makes the watch read PSS
            while watch.peak_bytes < held and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            child.communicate("\n")
    # the child's 300 MB plus its interpreter (about 10 MB), counted once: not 2 x 300 MB
    assert HOLD < held - baseline < HOLD + 60_000_000
    assert watch.peak_bytes >= held
    assert watch.peak_gb == round(watch.peak_bytes / 1e9, 2)
    assert watch.peak_gb < (baseline + 2 * HOLD) / 1e9


def test_a_watch_that_never_ran_reports_no_peak() -> None:
    assert PeakMemory().peak_gb is None


def test_pss_reads_are_spaced_to_fill_at_most_the_overhead_share() -> None:
    assert pss_read_gap_s(0.1, 0.05) == pytest.approx(1.9)  # 0.1 s of every 2 s
    assert pss_read_gap_s(0.02, 0.5) == pytest.approx(0.02)
    assert pss_read_gap_s(0.0, 0.05) == 0.0


def test_a_steady_tree_is_read_once_on_entry_and_once_on_exit() -> None:
    child = _holder()
    try:
        assert tree_rss_bytes(child.pid) > HOLD  # statm counts the touched pages
        with PeakMemory(interval_s=0.02) as watch:
            time.sleep(1.0)
        # resident sizes were checked every tick; none rose by 32 MB, so no PSS read between
        assert watch.rss_checks >= 10
        assert watch.pss_reads == 2
        assert watch.peak_bytes > HOLD
    finally:
        child.communicate("\n")


def test_a_rise_inside_the_read_gap_waits_for_the_gap() -> None:
    # a read gap of many minutes: the child's 300 MB come and go between the entry and exit reads
    with PeakMemory(interval_s=0.02, max_overhead=1e-9) as watch:
        baseline = watch.peak_bytes
        child = _holder()
        time.sleep(0.3)
        child.communicate("\n")
    assert watch.rss_checks >= 5
    assert watch.pss_reads == 2
    assert watch.peak_bytes < baseline + HOLD
