"""The resumable JSONL store: one line per episode, never twice, a cut-off last line repaired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftrl_gym.evaluation.results import ResultStore, episode_key


def _record(task_index: int, repeat: int = 0, f1: float = 1.0) -> dict:
    return {
        "agent": "oracle", "env": "FTRL-MultiHop-v0", "split": "test", "tasks": None,
        "task_index": task_index, "repeat": repeat, "solve_f1": f1,
    }


def test_append_writes_one_line_per_new_key(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "run" / "results.jsonl")
    assert store.append(_record(0)) is True
    assert store.append(_record(1)) is True
    assert store.append(_record(0, f1=0.0)) is False
    lines = store.path.read_text().splitlines()
    assert [json.loads(line)["task_index"] for line in lines] == [0, 1]
    assert len(store) == 2
    assert store.get(episode_key(_record(0)))["solve_f1"] == 1.0


def test_reopening_resumes_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    ResultStore(path).append(_record(3, repeat=1))
    reopened = ResultStore(path)
    assert episode_key(_record(3, repeat=1)) in reopened
    assert episode_key(_record(3, repeat=0)) not in reopened


def test_a_line_cut_by_a_kill_is_dropped_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_record(0)) + "\n" + '{"agent": "oracle", "env": "FTRL-Mu')
    store = ResultStore(path)
    assert len(store) == 1
    assert path.read_text() == json.dumps(_record(0)) + "\n"
    store.append(_record(1))
    assert len(path.read_text().splitlines()) == 2


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("not json\n" + json.dumps(_record(0)) + "\n")
    with pytest.raises(ValueError, match=r"results.jsonl:1: not a JSON line"):
        ResultStore(path)
