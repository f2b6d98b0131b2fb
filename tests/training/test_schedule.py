"""The RL learning rate: linear warmup, then constant, linear or cosine decay (hand-computed)."""

from __future__ import annotations

import math

import pytest

from ftrl_gym.agents.training.config import ConfigError, build_config
from ftrl_gym.agents.training.schedule import scheduled_lr


def test_warmup_ramps_linearly_to_the_peak() -> None:
    rates = [scheduled_lr(k, 1e-5, 4, 10, "constant", 0.1) for k in range(6)]
    assert rates == pytest.approx([2.5e-6, 5e-6, 7.5e-6, 1e-5, 1e-5, 1e-5])


def test_linear_and_cosine_decay_reach_the_floor_at_the_last_step() -> None:
    # Warmup 2 of 7 steps: the decay runs over steps 2..6, progress (k - 2) / 4.
    linear = [scheduled_lr(k, 1.0, 2, 7, "linear", 0.2) for k in range(7)]
    assert linear == pytest.approx([0.5, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2])
    cosine = [scheduled_lr(k, 1.0, 2, 7, "cosine", 0.2) for k in range(2, 7)]
    expected = [0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * p / 4)) for p in range(5)]
    assert cosine == pytest.approx(expected)
    assert cosine[2] == pytest.approx(0.6) and cosine[-1] == pytest.approx(0.2)


def test_an_unknown_schedule_or_one_without_an_end_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lr schedule 'step'"):
        scheduled_lr(0, 1.0, 0, 5, "step", 0.1)
    with pytest.raises(ConfigError, match="lr_schedule='exp' is unknown: use one of constant"):
        build_config(overrides={"lr_schedule": "exp"})
    with pytest.raises(ConfigError, match="decays to its floor at the last step: set max_steps"):
        build_config(overrides={"lr_schedule": "cosine"})


def test_the_trainer_steps_with_the_scheduled_rate(tokenizer, easy_tasks, tmp_path) -> None:
    from training_helpers import ScriptedGenerator, tiny_model

    from ftrl_gym.agents.training.policy import Policy
    from ftrl_gym.agents.training.trainer import RLTrainer

    config = build_config(
        overrides={
            "env_ids": ["FTRL-Custom-v0"],
            "tasks": str(easy_tasks),
            "train_tasks": 4,
            "prompts_per_step": 1,
            "mini_batch_size": 1,
            "rollouts_per_prompt": 2,
            "max_turns": 1,
            "max_new_tokens": 4,
            "max_context_tokens": 1024,
            "kl_coef": 0.0,
            "torch_threads": 1,
            "lr": 1e-3,
            "lr_warmup_steps": 2,
            "lr_schedule": "linear",
            "lr_min_ratio": 0.5,
            "max_steps": 4,
            "save_every": 100,
        }
    )
    trainer = RLTrainer(
        config, tmp_path, policy=Policy(tiny_model(tokenizer), tokenizer), progress=False
    )
    trainer.backend.generator = ScriptedGenerator(tokenizer, lambda text, k: "w" if k else "no")
    try:
        metrics = trainer.train()
        applied = trainer.backend.learner.optimizer.param_groups[0]["lr"]
    finally:
        trainer.close()
    # Warmup 5e-4, 1e-3; then linear over steps 2..3 from 1e-3 to 0.5 x 1e-3.
    assert [m["lr"] for m in metrics] == pytest.approx([5e-4, 1e-3, 1e-3, 5e-4])
    assert applied == pytest.approx(5e-4)
