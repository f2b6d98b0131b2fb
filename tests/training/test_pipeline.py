"""The pipeline's wiring, on a tiny model: evaluate → SFT → evaluate → GRPO → evaluate → results table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from training_helpers import tiny_model

from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.pipeline import (
    SCENARIO_COLUMNS,
    evaluate_model,
    gains_text,
    paired_gain,
    results_table,
    run_pipeline,
    summarize,
)
from ftrl_gym.agents.training.policy import Policy


def _tiny_pipeline(tokenizer, tmp_path: Path, **overrides):
    start = Policy(tiny_model(tokenizer), tokenizer).save(tmp_path / "tiny")
    return build_config(
        overrides={
            "model": str(start),
            "train_tasks": 1,
            "max_turns": 2,
            "prompts_per_step": 2,
            "rollouts_per_prompt": 2,
            "mini_batch_size": 2,
            "micro_batch_size": 4,
            "max_steps": 1,
            "max_new_tokens": 4,
            "max_context_tokens": 2048,
            "sft_tasks": 1,
            "sft_epochs": 1,
            "sft_batch_size": 2,
            "eval_episodes": 1,
            "eval_max_new_tokens": 4,
            "eval_max_turns": 2,
            "rl_algorithms": ["grpo"],
            "torch_threads": 1,
            "lr": 1e-3,
            "sft_lr": 1e-3,
            **overrides,
        }
    )


def test_pipeline_writes_a_row_per_stage(tokenizer, tmp_path: Path) -> None:
    config = _tiny_pipeline(tokenizer, tmp_path)
    rows = run_pipeline(config, tmp_path / "run", progress=False)
    assert list(rows) == ["start", "sft", "grpo"]
    assert all(row["episodes"] == 4 for row in rows.values())  # one test task per scenario
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["grpo"]["solve_f1"] == rows["grpo"]["solve_f1"]
    # each stage's process tree loaded torch and a model: hundreds of MB at least, under 24 GB
    assert all(0.1 < row["peak_memory_gb"] < 24 for row in rows.values())
    costs = json.loads((tmp_path / "run" / "stage_costs.json").read_text())
    assert {stage: cost["wall_s"] for stage, cost in costs.items()} == {
        stage: row["wall_s"] for stage, row in rows.items()
    }
    table = (tmp_path / "run" / "results.md").read_text().splitlines()
    assert table[0].startswith("| stage | SingleHop |") and table[5] == ""
    assert table[6].startswith("- sft - start: ") and table[7].startswith("- grpo - sft: ")
    assert " over 4 tasks (" in table[7]
    sft_log = (tmp_path / "run" / "sft" / "metrics.jsonl").read_text().splitlines()
    assert len(sft_log) == 2  # 4 oracle trajectories (one per scenario) in batches of 2
    stage = tmp_path / "run" / "grpo"
    assert (stage / "final" / "model.safetensors").is_file()
    assert not (stage / "checkpoints").exists()  # a finished stage keeps only final/

    again = run_pipeline(config, tmp_path / "run", progress=False)  # all done: nothing reruns
    assert again == rows  # the same scores, and each stage's wall time as first measured
    assert len((tmp_path / "run" / "sft" / "metrics.jsonl").read_text().splitlines()) == 2


def test_pipeline_scores_the_validation_pick_on_test(tokenizer, tmp_path: Path) -> None:
    settings = {"val_every": 1, "val_tasks": 1, "max_steps": 2, "rl_eval_model": "best"}
    config = _tiny_pipeline(tokenizer, tmp_path, **settings)
    rows = run_pipeline(config, tmp_path / "run", progress=False)
    stage = tmp_path / "run" / "grpo"
    best = json.loads((stage / "best.json").read_text())
    assert rows["grpo"]["selected_step"] == best["step"]
    assert rows["grpo"]["val_solve_f1"] == best["solve_f1"]
    validated = [json.loads(line)["step"] for line in (stage / "validation.jsonl").open()]
    assert validated == [0, 1, 2]
    table = (tmp_path / "run" / "results.md").read_text()
    assert f"| grpo (step {best['step']}) |" in table
    stored = [
        json.loads(line) for line in (tmp_path / "run" / "eval" / "grpo" / "results.jsonl").open()
    ]
    assert len(stored) == 4  # the pick was scored once, on one test task per scenario


@pytest.mark.slow
def test_vllm_backend_evaluates_with_a_vllm_engine(tokenizer, tmp_path: Path) -> None:
    """``backend=vllm`` evaluates through vLLM (greedy, batched), with the same harness and records."""
    # vLLM's CPU attention has kernels for SmolLM2's head size, 64 (= 128 / 2 heads), not the default 16.
    start = Policy(tiny_model(tokenizer, hidden_size=128, heads=2), tokenizer).save(
        tmp_path / "tiny"
    )
    config = build_config(
        overrides={
            "backend": "vllm",
            "eval_episodes": 1,
            "eval_max_new_tokens": 4,
            "eval_max_turns": 2,
            "vllm_kv_cache_gib": 0.25,
        }
    )
    summary = evaluate_model(str(start), config, tmp_path / "eval", progress=False)
    assert summary["episodes"] == 4  # one test task per scenario
    records = [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").open()]
    assert {r["agent"] for r in records} == {"vllm:tiny"}
    assert {r["scenario"] for r in records} == set(SCENARIO_COLUMNS)
    assert all(r["completion_tokens"] <= 4 * r["turns"] for r in records)


def test_paired_gain_pairs_tasks_by_key_with_a_student_t_interval() -> None:
    base = {"a": 0.0, "b": 0.5, "c": 1.0}
    other = {"a": 0.5, "b": 0.75, "c": 1.0, "only_here": 1.0}
    gain = paired_gain(base, other)
    # Differences 0.5, 0.25, 0: mean 0.25, sd 0.25, t(0.975, 2) = 4.302653 -> half-width 0.621034.
    assert gain["tasks"] == 3 and gain["better"] == 2 and gain["worse"] == 0
    assert gain["gain"] == pytest.approx(0.25)
    assert gain["low"] == pytest.approx(0.25 - 0.621034, abs=1e-6)
    assert gain["high"] == pytest.approx(0.25 + 0.621034, abs=1e-6)
    rows = {"sft": {"per_task": base}, "grpo": {"per_task": other}}
    assert gains_text(rows) == (
        "- grpo - sft: +25.0 Solve-F1 points, paired 95% CI [-37.1, +87.1] over 3 tasks "
        "(2 better, 0 worse)"
    )
    assert gains_text({"start": {"per_task": base}}) == ""
    # With a start row, SFT's own gain over it comes first (the demo's effect on its own sample).
    start = {"a": 0.0, "b": 0.0, "c": 0.0}
    assert gains_text({"start": {"per_task": start}, **rows}).splitlines()[0] == (
        "- sft - start: +50.0 Solve-F1 points, paired 95% CI [-74.2, +174.2] over 3 tasks "
        "(2 better, 0 worse)"
    )


def _record(scenario: str, task: int, f1: float, calls: int, turns: int, errors: int) -> dict:
    return {
        "env": f"FTRL-{scenario}",
        "task_index": task,
        "scenario": scenario,
        "solve_p": 1.0,
        "solve_r": f1,
        "solve_f1": f1,
        "tool_calls": calls,
        "turns": turns,
        "format_errors": errors,
    }


def test_summary_and_table_show_how_the_agent_behaved() -> None:
    """Calls and turns per episode and malformed calls sit beside the scores, so a policy that learns
    to spam calls (more calls, more turns, lower Solve-P) shows in results.md without digging."""
    records = [
        _record("single_hop", 0, 1.0, 1, 2, 0),
        _record("single_hop", 1, 0.0, 6, 6, 2),
        _record("multi_hop", 0, 0.5, 2, 3, 1),
    ]
    row = summarize(records)
    assert row["calls_per_episode"] == pytest.approx(3.0)  # (1 + 6 + 2) / 3
    assert row["turns_per_episode"] == pytest.approx(11 / 3)
    assert row["format_errors"] == 3
    assert row["per_scenario"]["single_hop"] == pytest.approx(0.5)
    assert row["per_task"] == {
        "FTRL-single_hop/0/0": 1.0,
        "FTRL-single_hop/1/0": 0.0,
        "FTRL-multi_hop/0/0": 0.5,
    }
    table = results_table(
        {"grpo": {**row, "wall_s": 61.4, "peak_memory_gb": 5.413}, "sft": {**row, "wall_s": 1.0}}
    ).splitlines()
    assert table[0].endswith(
        "| Solve-F1 | calls/ep | turns/ep | format errors | episodes | stage wall s | peak GB |"
    )
    assert table[2].endswith("| 50.0 | 3.0 | 3.7 | 3 | 3 | 61 | 5.41 |")
    assert table[3].endswith("| 3 | 3 | 1 | - |")  # a row from before peaks were recorded


def test_a_stage_process_dies_with_a_killed_pipeline() -> None:
    import signal
    import subprocess
    import sys

    import psutil

    pipeline = subprocess.Popen([
        sys.executable, "-c",
        "import time\nfrom ftrl_gym.agents.training.pipeline import in_fresh_process\n"
        "in_fresh_process(time.sleep, 120)",
    ])
    try:
        deadline = time.monotonic() + 60
        while not (stages := psutil.Process(pipeline.pid).children()) and time.monotonic() < deadline:
            time.sleep(0.2)
        # the spawn start method also runs a resource tracker; the stage is the process pool worker
        stage = next(p for p in stages if "resource_tracker" not in " ".join(p.cmdline()))
        while "spawn_main" not in " ".join(stage.cmdline()) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # the worker's initializer (the prctl) runs before it takes the task
        pipeline.send_signal(signal.SIGKILL)
        pipeline.wait()
        stage.wait(timeout=30)  # psutil.TimeoutExpired if the stage sleeps on
        assert not stage.is_running()
    finally:
        pipeline.kill()


def _die_now() -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_stage_is_one_clear_error_not_a_broken_pool() -> None:
    from ftrl_gym.agents.training.pipeline import StageProcessError, in_fresh_process

    with pytest.raises(StageProcessError, match=r"the process running _die_now ended without a result: "
                       r"it was killed \(out of memory\?.*the same command resumes it"):
        in_fresh_process(_die_now)
