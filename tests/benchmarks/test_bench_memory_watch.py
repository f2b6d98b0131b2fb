"""The watcher-cost benchmark runs end to end on a small tree and prints both watchers' rows."""

from __future__ import annotations

import pytest
from ftrl_gym.agents.training.memory_watch import supported

from benchmarks.bench_memory_watch import main

pytestmark = pytest.mark.skipif(not supported(), reason="needs Linux /proc/<pid>/smaps_rollup")


def test_the_benchmark_prints_read_costs_and_both_watchers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--hold-gb", "0.05", "--workers", "2", "--window-s", "1.5", "--reads", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "tree: 0.05 GB held, 2 forked workers, growing 0 MB/s; 2 reads each, windows of 1.5 s"
    )
    assert lines[4].startswith("| PSS (smaps_rollup) | ")
    assert lines[5].startswith("| RSS (statm) | ")
    assert lines[9].startswith("| PSS every 1 s (before) | 1 | ")  # one read in 1.5 s
    assert lines[10].startswith("| PeakMemory | 2 | ")  # the entry and exit reads only
