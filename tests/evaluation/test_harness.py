"""The eval harness on the real envs: baselines' scores, resume after an interruption, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftrl_gym.agents import OracleAgent, RandomAgent
from ftrl_gym.evaluation.harness import EvalConfig, run_evaluation, spread_indices
from ftrl_gym.evaluation.results import ResultStore, episode_key
from ftrl_gym.errors import AgentError, EnvConfigError

DATA = Path(__file__).parents[2] / "envs_generated"
SCENARIO_IDS = [
    "FTRL-SingleHop-v0", "FTRL-ParallelSingleHop-v0", "FTRL-MultiHop-v0", "FTRL-ParallelMultiHop-v0"
]


def _totals(records: list[dict]) -> dict:
    return {
        "episodes": len(records),
        "solve_f1": round(sum(r["solve_f1"] for r in records), 9),
        "tool_calls": sum(r["tool_calls"] for r in records),
        "turns": sum(r["turns"] for r in records),
    }


def test_oracle_scores_one_and_random_scores_lower(tmp_path: Path) -> None:
    config = EvalConfig(SCENARIO_IDS, episodes=4, concurrency=3)
    oracle = run_evaluation(OracleAgent(), config, ResultStore(tmp_path / "r.jsonl"))
    random_ = run_evaluation(RandomAgent(seed=1), config, ResultStore(tmp_path / "r.jsonl"))
    assert len(oracle) == len(random_) == 16
    assert {r["scenario"] for r in oracle} == {
        "single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop"
    }
    assert all(r["solve_f1"] == 1.0 and r["solve_p"] == 1.0 and r["solve_r"] == 1.0 for r in oracle)
    assert all(r["format_errors"] == 0 and r["truncation_reason"] is None for r in oracle)
    assert sum(r["solve_f1"] for r in random_) / 16 < 0.5
    assert sum(r["tool_calls"] for r in oracle) == sum(r["solved"] for r in oracle)


def test_repeats_and_concurrency_do_not_change_a_deterministic_agent(tmp_path: Path) -> None:
    serial = run_evaluation(
        OracleAgent(), EvalConfig(["FTRL-MultiHop-v0"], episodes=3, repeats=2, concurrency=1),
        ResultStore(tmp_path / "a.jsonl"),
    )
    batched = run_evaluation(
        OracleAgent(), EvalConfig(["FTRL-MultiHop-v0"], episodes=3, repeats=2, concurrency=4),
        ResultStore(tmp_path / "b.jsonl"),
    )
    count = len((DATA / "multi_hop" / "test.jsonl").read_text().splitlines())
    assert [(r["task_index"], r["repeat"]) for r in serial] == [
        (0, 0), (count // 3, 0), (2 * count // 3, 0), (0, 1), (count // 3, 1), (2 * count // 3, 1)
    ]
    assert _totals(serial) == _totals(batched)


class OracleThatDies(OracleAgent):
    """The oracle, under the oracle's name, that fails like a lost endpoint after ``calls`` turns."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls_left = calls

    def act(self, messages, tools):
        if self.calls_left == 0:
            raise AgentError("endpoint went away")
        self.calls_left -= 1
        return super().act(messages, tools)


def test_resume_after_an_agent_failure_counts_each_episode_once(tmp_path: Path) -> None:
    config = EvalConfig(["FTRL-MultiHop-v0", "FTRL-SingleHop-v0"], episodes=5, concurrency=2)
    path = tmp_path / "results.jsonl"
    with pytest.raises(AgentError, match="endpoint went away"):
        run_evaluation(OracleThatDies(calls=9), config, ResultStore(path))
    kept = path.read_text().splitlines()
    assert 0 < len(kept) < 10
    resumed = run_evaluation(OracleAgent(), config, ResultStore(path))
    fresh = run_evaluation(OracleAgent(), config, ResultStore(tmp_path / "fresh.jsonl"))
    assert _totals(resumed) == _totals(fresh) == {
        "episodes": 10, "solve_f1": 10.0, "tool_calls": _totals(fresh)["tool_calls"],
        "turns": _totals(fresh)["turns"],
    }
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 10
    assert len({episode_key(r) for r in lines}) == 10
    assert path.read_text().splitlines()[: len(kept)] == kept


def test_a_killed_eval_process_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "ftrl_gym.cli", "eval", "--agent", "oracle", "--env",
        "FTRL-SingleHop-v0", "--episodes", "60", "--concurrency", "1", "--out", str(out),
        "--no-progress",
    ]
    results = out / "results.jsonl"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if results.exists() and len(results.read_bytes().splitlines()) >= 5:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=30)
    interrupted = len(results.read_text().splitlines())
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert 5 <= interrupted < 60
    finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(records) == 60
    assert len({episode_key(r) for r in records}) == 60
    assert sum(r["solve_f1"] for r in records) == 60.0
    assert "| FTRL-SingleHop-v0 | single_hop | oracle | 60 | 1.000 ± 0.000 |" in finished.stdout


def test_spread_indices() -> None:
    assert spread_indices(10, 3) == [0, 3, 6]
    assert spread_indices(2, 5) == [0, 1]
    assert spread_indices(4, None) == [0, 1, 2, 3]


def test_unknown_env_id_suggests_the_nearest() -> None:
    with pytest.raises(EnvConfigError, match=r"unknown env id 'FTRL-MultiHopp-v0'\. Did you mean "
                                             r"'FTRL-MultiHop-v0'\?"):
        EvalConfig(["FTRL-MultiHopp-v0"])


def test_custom_env_needs_its_task_file_and_only_it_reads_one(tmp_path: Path) -> None:
    with pytest.raises(EnvConfigError, match="FTRL-Custom-v0 needs a task file: add --tasks"):
        EvalConfig(["FTRL-Custom-v0"])
    with pytest.raises(EnvConfigError, match="--tasks is only read by FTRL-Custom-v0"):
        EvalConfig(["FTRL-MultiHop-v0"], tasks=str(tmp_path / "t.jsonl"))


def test_custom_task_file_runs_through_ftrl_custom(tmp_path: Path) -> None:
    source = DATA / "parallel_multi_hop" / "test.jsonl"
    tasks = tmp_path / "mine.jsonl"
    tasks.write_text("".join(source.read_text().splitlines(keepends=True)[:3]))
    config = EvalConfig(["FTRL-Custom-v0"], tasks=str(tasks), concurrency=2)
    records = run_evaluation(OracleAgent(), config, ResultStore(tmp_path / "r.jsonl"))
    assert [r["task_index"] for r in records] == [0, 1, 2]
    assert all(r["tasks"] == str(tasks) and r["split"] is None for r in records)
    assert all(r["scenario"] == "parallel_multi_hop" and r["solve_f1"] == 1.0 for r in records)


class _ContextAfterOneTurn:
    """An agent whose model plays the oracle's first turn, then has no room left in its context."""

    name = "context-limited"

    def __init__(self) -> None:
        self.oracle = OracleAgent()
        self.turns = 0

    def reset(self, task) -> None:
        self.oracle.reset(task)
        self.turns = 0

    def generate(self, requests):
        from ftrl_gym.agents.base import AgentOutput

        self.turns += 1
        if self.turns > 1:
            return [AgentOutput("", 5000, 0, stop_reason="context_limit") for _ in requests]
        return [AgentOutput(self.oracle.act(messages, tools), 100, 20) for messages, tools in requests]


def test_an_agent_out_of_context_ends_its_episode_truncated_with_the_turns_played(tmp_path: Path) -> None:
    [record] = run_evaluation(
        _ContextAfterOneTurn(), EvalConfig(["FTRL-MultiHop-v0"], episodes=1, concurrency=1),
        ResultStore(tmp_path / "r.jsonl"),
    )
    assert record["truncation_reason"] == "context_limit"
    assert (record["turns"], record["tool_calls"], record["solved"], record["total_answers"]) == (1, 1, 1, 4)
    assert record["solve_f1"] == 2 * 1 / (1 + 4)  # 2S / (C + T) over the turn played
    assert record["prompt_tokens"] == 5100 and record["completion_tokens"] == 20
