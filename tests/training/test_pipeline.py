"""The pipeline's wiring, on a tiny model: evaluate → SFT → evaluate → GRPO → evaluate → results table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_helpers import tiny_model

from agents.training.config import build_config
from agents.training.pipeline import SCENARIO_COLUMNS, evaluate_model, run_pipeline
from agents.training.policy import Policy


def test_pipeline_writes_a_row_per_stage(tokenizer, tmp_path: Path) -> None:
    start = Policy(tiny_model(tokenizer), tokenizer).save(tmp_path / "tiny")
    config = build_config(
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
        }
    )
    rows = run_pipeline(config, tmp_path / "run", progress=False)
    assert list(rows) == ["start", "sft", "grpo"]
    assert all(row["episodes"] == 4 for row in rows.values())  # one test task per scenario
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["grpo"]["solve_f1"] == rows["grpo"]["solve_f1"]
    table = (tmp_path / "run" / "results.md").read_text().splitlines()
    assert table[0].startswith("| stage | SingleHop |") and len(table) == 5
    sft_log = (tmp_path / "run" / "sft" / "metrics.jsonl").read_text().splitlines()
    assert len(sft_log) == 2  # 4 oracle trajectories (one per scenario) in batches of 2


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
