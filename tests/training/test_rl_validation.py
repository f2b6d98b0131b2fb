"""Greedy validation during RL: held-out task indices, the logged rows, the best model and its pick."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_helpers import tiny_model

from ftrl_gym.agents.training.config import ConfigError, build_config
from ftrl_gym.agents.training.pipeline import results_table, rl_model
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.rollout import Episode
from ftrl_gym.agents.training.trainer import RLTrainer
from ftrl_gym.agents.training.validation import (
    best_row,
    read_best,
    validation_indices,
    validation_summary,
)


def test_validation_indices_spread_over_the_untrained_tail() -> None:
    assert validation_indices(1000, 64, 8) == [64, 181, 298, 415, 532, 649, 766, 883]
    assert validation_indices(10, 8, 5) == [8, 9]
    with pytest.raises(ValueError, match="beyond the 4 used for RL, and this env has 4"):
        validation_indices(4, 4, 2)


def test_validation_summary_averages_episode_metrics_by_hand() -> None:
    def episode(f1: float, p: float, r: float, calls: int) -> Episode:
        metrics = {"solve_f1": f1, "solve_p": p, "solve_r": r, "calls": calls}
        return Episode("FTRL-SingleHop-v0", 0, 0, "g", metrics=metrics)

    # Episode 1: 1 answer in 1 call of 1 target -> F1 2/(1+1) = 1; episode 2: 0 of 1 in 3 calls.
    row = validation_summary(4, [episode(1.0, 1.0, 1.0, 1), episode(0.0, 0.0, 0.0, 3)])
    assert row == {
        "step": 4,
        "solve_p": 0.5,
        "solve_r": 0.5,
        "solve_f1": 0.5,
        "calls_per_episode": 2.0,
        "episodes": 2,
    }


def test_best_row_takes_the_highest_f1_and_the_earliest_step_on_a_tie() -> None:
    rows = [{"step": s, "solve_f1": f} for s, f in [(0, 0.2), (2, 0.3), (4, 0.3), (6, 0.1)]]
    assert best_row(rows)["step"] == 2
    assert best_row(list(reversed(rows)))["step"] == 2
    assert best_row([]) is None


def _config(tasks: Path, **overrides):
    settings = {
        "env_ids": ["FTRL-Custom-v0"],
        "tasks": str(tasks),
        "train_tasks": 2,
        "prompts_per_step": 2,
        "rollouts_per_prompt": 4,
        "mini_batch_size": 2,
        "micro_batch_size": 16,
        "max_new_tokens": 6,
        "eval_max_new_tokens": 6,
        "max_turns": 2,
        "max_context_tokens": 1024,
        "lr": 2e-2,
        "epochs": 100,
        "kl_coef": 0.0,
        "save_every": 1,
        "torch_threads": 1,
        "val_every": 2,
        "val_tasks": 8,
        "seed": 3,
    }
    settings.update(overrides)
    return build_config(overrides=settings)


def _train(tokenizer, config, out: Path) -> RLTrainer:
    policy = Policy(tiny_model(tokenizer, focused=True), tokenizer)
    trainer = RLTrainer(config, out, policy=policy, progress=False)
    try:
        trainer.train()
    finally:
        trainer.close()
    return trainer


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]


def test_training_validates_every_k_steps_and_after_the_last_keeping_the_best(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    _train(tokenizer, _config(easy_tasks, max_steps=3), run)
    rows = _rows(run)
    # Step 0 (the start), every 2 steps, and the last step (3) although 3 is not a multiple of 2.
    assert [r["step"] for r in rows] == [0, 2, 3]
    # The 4-task file trains on tasks 0-1: validation plays tasks 2 and 3, one greedy episode each.
    assert all(r["episodes"] == 2 for r in rows)
    best = read_best(run)
    assert best == best_row(rows)
    assert (run / "best" / "config.json").is_file()
    assert (run / "final" / "config.json").is_file()
    # Greedy episodes are deterministic: the starting model validates the same on every run.
    again = tmp_path / "again"
    _train(tokenizer, _config(easy_tasks, max_steps=1, val_every=5), again)
    assert [r["step"] for r in _rows(again)] == [0, 1]
    assert _rows(again)[0] == rows[0]


def test_a_resumed_run_validates_each_step_once(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    _train(tokenizer, _config(easy_tasks, max_steps=2), run)
    _train(tokenizer, _config(easy_tasks, max_steps=4), run)
    assert [r["step"] for r in _rows(run)] == [0, 2, 4]


def test_the_pipeline_scores_the_best_model_and_names_its_step(tmp_path: Path) -> None:
    run = tmp_path / "grpo"
    (run / "best").mkdir(parents=True)
    (run / "best" / "config.json").write_text("{}")
    (run / "best.json").write_text(json.dumps({"step": 4, "solve_f1": 0.25}))
    assert rl_model(run, "final") == (str(run / "final"), {})
    assert rl_model(run, "best") == (str(run / "best"), {"selected_step": 4, "val_solve_f1": 0.25})
    with pytest.raises(FileNotFoundError, match="trained without val_every"):
        rl_model(tmp_path / "other", "best")
    row = {
        "per_scenario": dict.fromkeys(
            ("single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop"), 0.5
        ),
        "solve_p": 0.5,
        "solve_r": 0.5,
        "solve_f1": 0.5,
        "calls_per_episode": 1.0,
        "turns_per_episode": 1.0,
        "format_errors": 0,
        "episodes": 4,
        "selected_step": 4,
    }
    assert "| grpo (step 4) | 50.0 |" in results_table({"grpo": row})


def test_best_needs_validation_and_known_choices() -> None:
    with pytest.raises(ConfigError, match="set val_every"):
        build_config(overrides={"rl_eval_model": "best"})
    with pytest.raises(ConfigError, match="use final or best"):
        build_config(overrides={"rl_eval_model": "last", "val_every": 1})
    with pytest.raises(ConfigError, match="val_every must be 0 or more"):
        build_config(overrides={"val_every": -1})
