"""Summaries, Markdown, JSON and the PNG chart, against hand-computed numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftrl_gym.evaluation.report import summarize, to_json, to_markdown, write_report


def _record(agent: str, env: str, scenario: str, task: int, repeat: int, f1: float, **extra) -> dict:
    base = {
        "agent": agent, "env": env, "split": "test", "tasks": None, "scenario": scenario,
        "task_index": task, "repeat": repeat, "solve_p": f1, "solve_r": f1, "solve_f1": f1,
        "tool_calls": 2, "turns": 3, "format_errors": 0, "prompt_tokens": 0,
        "completion_tokens": 0, "wall_s": 0.5,
    }
    return {**base, **extra}


RECORDS = [
    _record("hf", "FTRL-MultiHop-v0", "multi_hop", 0, 0, 1.0, format_errors=1, prompt_tokens=90,
            completion_tokens=10),
    _record("hf", "FTRL-MultiHop-v0", "multi_hop", 0, 1, 0.0, format_errors=2, prompt_tokens=50,
            completion_tokens=50),
    _record("hf", "FTRL-MultiHop-v0", "multi_hop", 1, 0, 0.5, turns=2, tool_calls=5),
    _record("hf", "FTRL-MultiHop-v0", "multi_hop", 1, 1, 0.5, turns=2, tool_calls=5),
    _record("oracle", "FTRL-MultiHop-v0", "multi_hop", 0, 0, 1.0),
]


def test_summary_numbers_by_hand() -> None:
    hf, oracle = summarize(RECORDS)
    assert (hf.agent, hf.env, hf.scenario, hf.episodes, hf.tasks) == (
        "hf", "FTRL-MultiHop-v0", "multi_hop", 4, 2
    )
    # task means 0.5 and 0.5 -> mean 0.5, no spread between tasks
    assert hf.solve_f1.mean == pytest.approx(0.5)
    assert hf.solve_f1.half_width == pytest.approx(0.0)
    assert hf.tool_calls == pytest.approx(3.5)  # (2 + 2 + 5 + 5) / 4
    assert hf.turns == pytest.approx(2.5)  # (3 + 3 + 2 + 2) / 4
    assert hf.format_error_rate == pytest.approx(3 / 10)
    assert hf.tokens == pytest.approx(50.0)  # (100 + 100 + 0 + 0) / 4
    assert oracle.solve_f1.mean == 1.0 and oracle.episodes == 1


def test_mixed_envs_get_an_all_row() -> None:
    records = [
        _record("oracle", "FTRL-Mixed-v0", "single_hop", 0, 0, 1.0),
        _record("oracle", "FTRL-Mixed-v0", "multi_hop", 1, 0, 0.0),
    ]
    rows = summarize(records)
    assert [r.scenario for r in rows] == ["single_hop", "multi_hop", "all"]
    assert rows[2].solve_f1.mean == 0.5 and rows[2].episodes == 2
    # t(0.975, 1) * s / sqrt(2) with s = sqrt(0.5): 12.7062 * 0.5
    assert rows[2].solve_f1.half_width == pytest.approx(6.3531, abs=1e-4)


def test_markdown_and_json() -> None:
    rows = summarize(RECORDS)
    table = to_markdown(rows)
    assert table.splitlines()[0].startswith("| env | scenario | agent | episodes | Solve-P |")
    assert "| FTRL-MultiHop-v0 | multi_hop | hf | 4 | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.500 ± 0.000 " \
        "| 3.50 | 2.50 | 30.0% | 50 | 0.50 |" in table
    data = to_json(rows)
    assert data[0]["solve_f1"] == {"mean": 0.5, "half_width": 0.0, "n": 2, "low": 0.5, "high": 0.5}
    json.dumps(data)


def test_scorer_judged_envs_get_bfcls_accuracy_beside_solve_f1() -> None:
    records = [
        _record("oracle", "FTRL-BFCL-Parallel-v0", "unknown", 0, 0, 1.0, accepted=True),
        _record("oracle", "FTRL-BFCL-Parallel-v0", "unknown", 1, 0, 0.5, accepted=False),
        _record("oracle", "FTRL-BFCL-Parallel-v0", "unknown", 2, 0, 1.0, accepted=True),
        _record("oracle", "FTRL-MultiHop-v0", "multi_hop", 0, 0, 1.0, accepted=None),
    ]
    bfcl, ours = summarize(records)
    assert bfcl.accuracy == pytest.approx(2 / 3) and ours.accuracy is None
    lines = to_markdown([bfcl, ours]).splitlines()
    assert lines[0].startswith("| env | scenario | agent | episodes | Solve-P | Solve-R | Solve-F1 | accuracy | calls/ep")
    assert "| 66.7% | 2.00 |" in lines[2] and "| n/a | 2.00 |" in lines[3]
    assert "accuracy" not in to_markdown(summarize(RECORDS))


def test_write_report_makes_the_three_files(tmp_path: Path) -> None:
    rows, table = write_report(RECORDS, tmp_path)
    assert len(rows) == 2
    assert table in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())[1]["agent"] == "oracle"
    assert (tmp_path / "solve_f1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
