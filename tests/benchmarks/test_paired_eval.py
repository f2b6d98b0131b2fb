"""Arguments and the per-scenario table of the paired model evaluation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.paired_eval import parse_models, scenario_table

ROOT = Path(__file__).resolve().parents[2]


def test_models_keep_their_order_and_bad_items_are_named() -> None:
    assert list(parse_models(["sft=a/model", "grpo=b/best=1"]).items()) == [
        ("sft", "a/model"),
        ("grpo", "b/best=1"),
    ]
    with pytest.raises(ValueError, match="'runs/x' is not NAME=MODEL"):
        parse_models(["runs/x"])
    with pytest.raises(ValueError, match="'=runs/x' is not NAME=MODEL"):
        parse_models(["=runs/x"])
    with pytest.raises(ValueError, match="model name 'sft' is given twice"):
        parse_models(["sft=a", "sft=b"])


def test_the_scenario_table_shows_points_per_scenario() -> None:
    row = {
        "per_scenario": {
            "single_hop": 0.48,
            "parallel_single_hop": 0.22,
            "multi_hop": 0.055,
            "parallel_multi_hop": 0.07,
        }
    }
    table = scenario_table({"outcome": row})
    assert table.splitlines()[0] == (
        "| model | SingleHop | ParallelSingleHop | MultiHop | ParallelMultiHop |"
    )
    assert table.splitlines()[2] == "| outcome | 48.0 | 22.0 | 5.5 | 7.0 |"


def test_one_model_is_refused_before_anything_is_evaluated(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.paired_eval", "--out", str(tmp_path), "sft=smollm2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "give at least two models" in out.stderr
    assert not any(tmp_path.iterdir())
