"""A stage's cost over the pipeline's invocations: the sums, the ledger, a killed invocation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ftrl_gym.agents.training.stage_cost import (
    COSTS_NAME,
    CostLedger,
    StageCost,
    StageMeter,
    combined_cost,
)


def test_an_invocation_that_worked_adds_its_time_and_raises_the_peak() -> None:
    before = StageCost(1630.0, 5.8)
    assert combined_cost(before, 5.0, 6.1, worked=True) == StageCost(1635.0, 6.1)
    assert combined_cost(before, 5.0, 2.0, worked=True) == StageCost(1635.0, 5.8)
    assert combined_cost(before, 5.0, None, worked=True) == StageCost(1635.0, 5.8)
    assert combined_cost(None, 5.0, 2.0, worked=True) == StageCost(5.0, 2.0)
    assert combined_cost(None, 5.0, None, worked=True) == StageCost(5.0, None)


def test_an_invocation_that_found_the_stage_done_adds_nothing() -> None:
    assert combined_cost(StageCost(1630.0, 5.8), 5.0, 6.1, worked=False) == StageCost(1630.0, 5.8)
    # a row from before peaks were recorded takes this invocation's measurement
    assert combined_cost(StageCost(1630.0), 5.0, 2.0, worked=False) == StageCost(1630.0, 2.0)
    # nothing recorded yet: this invocation's part is all there is
    assert combined_cost(None, 5.0, 2.0, worked=False) == StageCost(5.0, 2.0)


def test_the_ledger_reads_results_rows_it_lacks_and_its_own_entries_first(tmp_path: Path) -> None:
    rows = {
        "start": {"solve_f1": 0.0},
        "sft": {"solve_f1": 0.18, "wall_s": 1652.8, "peak_memory_gb": 9.53},
        "grpo": {"solve_f1": 0.25, "wall_s": 3153.9},
    }
    ledger = CostLedger(tmp_path, rows)
    assert ledger.before("start") is None
    assert ledger.before("sft") == StageCost(1652.8, 9.53)
    assert ledger.before("grpo") == StageCost(3153.9, None)
    assert ledger.before("reinforce_pp") is None
    ledger.save("grpo", StageCost(8153.9, 17.1))
    assert ledger.before("grpo") == StageCost(8153.9, 17.1)
    saved = json.loads((tmp_path / COSTS_NAME).read_text())
    assert saved == {"grpo": {"wall_s": 8153.9, "peak_memory_gb": 17.1}}
    assert [path.name for path in tmp_path.iterdir()] == [COSTS_NAME]


_KILLED_STAGE = """
import sys, time
from pathlib import Path
from ftrl_gym.agents.training.stage_cost import CostLedger, StageMeter
with StageMeter(CostLedger(Path(sys.argv[1]), {}), "grpo", interval_s=0.1) as meter:
    with meter.watch:
        time.sleep(120)
"""


def test_a_killed_invocation_time_counts_when_a_later_one_finishes(tmp_path: Path) -> None:
    stage = subprocess.Popen([sys.executable, "-c", _KILLED_STAGE, str(tmp_path)])
    try:
        ledger = CostLedger(tmp_path, {})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recorded = ledger.before("grpo") if (tmp_path / COSTS_NAME).is_file() else None
            if recorded is not None and recorded.wall_s >= 1.5:
                break
            time.sleep(0.1)
        stage.send_signal(signal.SIGKILL)
        stage.wait(timeout=30)
    finally:
        stage.kill()
    killed = ledger.before("grpo")
    assert killed is not None and 1.5 <= killed.wall_s < 60
    assert killed.peak_memory_gb is not None and killed.peak_memory_gb > 0  # its Python's PSS

    with StageMeter(ledger, "grpo", interval_s=60) as meter:
        time.sleep(0.3)
        finished = meter.finish(worked=True)
    assert killed.wall_s + 0.3 <= finished.wall_s < killed.wall_s + 10
    assert ledger.before("grpo") == finished
    with StageMeter(ledger, "grpo", interval_s=60) as meter:
        time.sleep(0.1)
        assert meter.finish(worked=False) == finished  # found it done: nothing added


def test_a_stage_that_raises_keeps_the_time_it_spent(tmp_path: Path) -> None:
    ledger = CostLedger(tmp_path, {})
    with (
        pytest.raises(RuntimeError, match="stage process died"),
        StageMeter(ledger, "sft", interval_s=60),
    ):
        time.sleep(0.2)
        raise RuntimeError("stage process died")
    spent = ledger.before("sft")
    assert spent is not None and 0.2 <= spent.wall_s < 10
