"""The pipeline's wiring, on a tiny model: evaluate → SFT → evaluate → GRPO → evaluate → results table."""

from __future__ import annotations

import json
from pathlib import Path

from training_helpers import tiny_model

from agents.training.config import build_config
from agents.training.pipeline import run_pipeline
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
