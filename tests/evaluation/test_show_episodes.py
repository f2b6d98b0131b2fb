"""Episode traces: stored by the harness for every turn, shown as transcripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftrl_gym.agents import OracleAgent
from ftrl_gym.evaluation.harness import EvalConfig, run_evaluation
from ftrl_gym.evaluation.results import ResultStore
from ftrl_gym.evaluation.show_episodes import format_episode, load_episodes, select

ROOT = Path(__file__).resolve().parents[2]


def test_the_harness_stores_what_each_turn_said_and_earned(tmp_path: Path) -> None:
    config = EvalConfig(["FTRL-SingleHop-v0"], episodes=1)
    (record,) = run_evaluation(OracleAgent(), config, ResultStore(tmp_path / "r.jsonl"))
    (answer,) = [a for answers in record["answers"].values() for a in answers]
    call, final = record["trace"]
    assert (call["branch"], call["calls"], call["solved"], call["reward"]) == (
        "tool_calls",
        1,
        1,
        1.0,  # 2q / (p + 1) with p = q = 1
    )
    assert "<tool_call>" in call["response"] and answer in call["results"][0]
    assert final["calls"] == 0 and answer in final["response"]
    assert record["question"] and len(record["trace"]) == record["turns"]
    stored = load_episodes(tmp_path / "r.jsonl")
    assert stored[0]["trace"] == record["trace"]  # the trace survives the JSONL round trip


def _record(task_index: int, solve_f1: float, trace: list[dict]) -> dict:
    return {
        "env": "FTRL-SingleHop-v0",
        "task_index": task_index,
        "repeat": 0,
        "solve_f1": solve_f1,
        "solved": 0,
        "total_answers": 1,
        "tool_calls": 2,
        "turns": len(trace),
        "question": "Look up Prigaelmouth's mayor for me.",
        "answers": {"city_database_lookup": ["Qualaerk Ceomeis"]},
        "trace": trace,
    }


CALL = '<tool_call>\n{"name": "city_database_lookup", "arguments": {"city": "Prigaelmouth"}}\n</tool_call>'
TURN = {
    "response": CALL + "\n" + CALL,
    "reward": 0.0,
    "branch": "tool_calls",
    "calls": 2,
    "solved": 0,
    "results": ["city_database_lookup: error: missing 1 required positional argument: 'info_type'"]
    * 2,
    "parse_errors": [],
}


def test_a_transcript_shows_the_question_each_response_and_the_tool_errors() -> None:
    text = format_episode(_record(13, 0.0, [TURN]))
    lines = text.splitlines()
    assert lines[0] == (
        "== FTRL-SingleHop-v0/13 (repeat 0): Solve-F1 0.00, 0 of 1 answers, 2 calls, 1 turns"
    )
    assert lines[1] == "question: Look up Prigaelmouth's mayor for me."
    assert lines[3] == "-- turn 1: reward +0.00 (tool_calls; 2 calls, 0 solved)"
    assert lines[4] == "   | <tool_call>"
    assert (
        lines.count(
            "   -> city_database_lookup: error: missing 1 required positional argument: 'info_type'"
        )
        == 2
    )


def test_select_by_task_prefix_failure_and_limit() -> None:
    records = [_record(1, 1.0, []), _record(13, 0.0, []), _record(130, 0.5, [])]
    assert [r["task_index"] for r in select(records, task="FTRL-SingleHop-v0/13")] == [13, 130]
    assert [r["task_index"] for r in select(records, failed=True)] == [13, 130]
    assert [r["task_index"] for r in select(records, limit=1)] == [1]


def test_an_episode_stored_without_a_trace_says_so() -> None:
    record = _record(4, 0.0, [])
    del record["trace"]
    with pytest.raises(KeyError, match="FTRL-SingleHop-v0/4 has no trace: it was stored before"):
        format_episode(record)


def test_the_script_prints_the_chosen_transcripts(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(_record(i, 0.0, [TURN])) + "\n" for i in (3, 13)))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ftrl_gym.cli",
            "episodes",
            str(path),
            "--task",
            "FTRL-SingleHop-v0/13",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert out.startswith("== FTRL-SingleHop-v0/13 (repeat 0)")
    assert "FTRL-SingleHop-v0/3 " not in out
