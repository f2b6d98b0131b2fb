"""GRPO on a tiny random model raises its reward; a resumed run takes exactly the step it would have;
a stopped run keeps its curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from training_helpers import tiny_model

from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.samples import Sample
from ftrl_gym.agents.training.trainer import RLTrainer, informative_samples


def _config(tasks: Path, **overrides):
    settings = {
        "env_ids": ["FTRL-Custom-v0"],
        "tasks": str(tasks),
        "train_tasks": 4,
        "prompts_per_step": 4,
        "rollouts_per_prompt": 8,
        "mini_batch_size": 4,
        "micro_batch_size": 32,
        "max_new_tokens": 6,
        "max_context_tokens": 1024,
        "lr": 2e-2,
        "epochs": 100,
        "kl_coef": 0.0,
        "save_every": 100,
        "torch_threads": 1,
    }
    settings.update(overrides)
    return build_config(overrides=settings)


def _train(tokenizer, config, out: Path, on_step=None, **kwargs) -> list[dict]:
    trainer = RLTrainer(
        config, out, policy=Policy(tiny_model(tokenizer, **kwargs), tokenizer), progress=False
    )
    try:
        return trainer.train(on_step=on_step)
    finally:
        trainer.close()


GRPO_SEEDS = (0, 1, 2)
"""Model-initialisation and sampling seeds of the runs in the reward test."""


def _grpo_rewards(tokenizer, tasks: Path, out: Path, seed: int) -> list[dict]:
    """Twelve GRPO steps on the easy tasks from a focused tiny model (its weights and its sampling
    both seeded with ``seed``).

    At lr 5e-3 each AdamW step still moves the tiny layers' weights by about a fifth of their size,
    and in about 1 run in 15 (5 of 73 measured) that washes out the model's focus on the 16 letters
    after it has begun to climb, so its reward falls back to chance: one run's curve is not evidence
    either way; the majority of three runs fails only if two of them wash out (about 1.3%).
    """
    config = _config(tasks, max_steps=12, lr=5e-3, seed=seed)
    return _train(tokenizer, config, out, seed=seed, focused=True, focus_embedding=4.0)


def test_grpo_raises_the_reward_of_a_tiny_model(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    runs = {
        seed: _grpo_rewards(tokenizer, easy_tasks, tmp_path / f"seed{seed}", seed)
        for seed in GRPO_SEEDS
    }
    curves = {seed: [m["reward"] for m in metrics] for seed, metrics in runs.items()}
    # A reply holding "w" scores 0.5 (SPEC 3.4, one answer left), so 0.5 is the ceiling; at
    # initialisation about one reply in four holds it (16 letters, 6 tokens).
    for seed, rewards in curves.items():
        assert rewards[0] < 0.25, (seed, rewards)
    # Measured on 73 runs: the 68 that climb end (mean of the last three steps) at 0.39 to 0.5, 0.19
    # to 0.38 above their start (mean of the first two); the 5 washed out end at 0.13 or less, with
    # no gain. The thresholds sit in that gap.
    climbed = [
        seed
        for seed, rewards in curves.items()
        if sum(rewards[-3:]) / 3 >= 0.3 and sum(rewards[-3:]) / 3 - sum(rewards[:2]) / 2 >= 0.15
    ]
    assert len(climbed) >= 2, curves
    last = runs[climbed[0]][-1]
    for key in (
        "reward",
        "solve_f1",
        "kl",
        "entropy",
        "clip_fraction",
        "tokens_per_s",
        "solve_p",
        "solve_r",
        "groups_rewarded",
        "groups_penalty_only",
        "groups_flat",
        "penalty_only_share",
    ):
        assert key in last
    out = tmp_path / f"seed{climbed[0]}"
    assert (out / "curves.png").stat().st_size > 0
    assert (out / "final" / "config.json").is_file()


@pytest.mark.parametrize(
    ("scheme", "episode_reward"), [("turn", "turn"), ("episode", "turn"), ("episode", "outcome")]
)
def test_resume_after_a_kill_takes_the_same_next_step(
    tokenizer, easy_tasks: Path, tmp_path: Path, scheme: str, episode_reward: str
) -> None:
    config = _config(
        easy_tasks,
        scheme=scheme,
        episode_reward=episode_reward,
        save_every=1,
        kl_coef=0.01,
        entropy_coef=0.01,
        prompts_per_step=2,
        mini_batch_size=1,
        rollouts_per_prompt=4,
    )
    straight = _train(
        tokenizer, config.__class__(**{**config.to_dict(), "max_steps": 2}), tmp_path / "a"
    )
    _train(tokenizer, config.__class__(**{**config.to_dict(), "max_steps": 1}), tmp_path / "b")
    resumed = _train(
        tokenizer, config.__class__(**{**config.to_dict(), "max_steps": 2}), tmp_path / "b"
    )
    assert [m["step"] for m in resumed] == [1, 2]
    for key in ("loss", "kl", "entropy", "grad_norm", "reward"):
        assert resumed[1][key] == pytest.approx(straight[1][key], abs=1e-6), key
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


class _Stop(Exception):
    pass


def test_a_run_stopped_after_a_checkpoint_keeps_its_curves(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    config = _config(
        easy_tasks,
        save_every=1,
        max_steps=3,
        prompts_per_step=2,
        mini_batch_size=1,
        rollouts_per_prompt=2,
    )

    def stop_at_step_two(metrics: dict) -> None:
        if metrics["step"] == 2:
            raise _Stop

    with pytest.raises(_Stop):
        _train(tokenizer, config, tmp_path / "run", on_step=stop_at_step_two)
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert not (tmp_path / "run" / "final").exists()


@pytest.mark.parametrize(("save_every", "saved"), [(1, [1, 2]), (3, [2])])
def test_the_last_step_is_checkpointed_once(
    tokenizer,
    easy_tasks: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    save_every: int,
    saved: list[int],
) -> None:
    config = _config(
        easy_tasks,
        save_every=save_every,
        max_steps=2,
        prompts_per_step=2,
        mini_batch_size=1,
        rollouts_per_prompt=2,
    )
    steps: list[int] = []
    save = RLTrainer.save_checkpoint

    def counted(trainer: RLTrainer) -> Path:
        steps.append(trainer.step)
        return save(trainer)

    monkeypatch.setattr(RLTrainer, "save_checkpoint", counted)
    _train(tokenizer, config, tmp_path / "run")
    assert steps == saved
    assert (tmp_path / "run" / "checkpoints" / "step_000002").is_dir()


def test_informative_samples_keeps_only_samples_with_a_nonzero_advantage() -> None:
    def sample(group: str, advantages: list[float]) -> Sample:
        return Sample([1, 2, 3], [0, 1, 1], [0.0, -1.0, -1.0], group, 0.0, advantages=advantages)

    tied = [sample("a", [0.0, 0.0, 0.0]), sample("a", [0.0, 0.0, 0.0])]
    split = [sample("b", [0.0, 0.7, 0.7]), sample("b", [0.0, -0.7, -0.7])]
    assert informative_samples(tied + split) == split
    assert informative_samples(tied) == []


def test_skip_zero_advantage_trains_only_on_groups_whose_scores_differ(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    settings = {"max_steps": 3, "seed": 3, "rollouts_per_prompt": 4, "mini_batch_size": 2}
    config = _config(easy_tasks, skip_zero_advantage=True, **settings)
    metrics = _train(tokenizer, config, tmp_path / "run", focused=True)
    for step in metrics:
        # GRPO zeroes a whole group when its 4 scores tie, so whole groups sit out.
        assert step["samples"] == 16
        assert step["trained_samples"] % 4 == 0
        groups = step["trained_samples"] // 4
        assert step["optimizer_updates"] == -(-groups // config.mini_batch_size)
        if not groups:
            assert math.isnan(step["loss"])
    assert any(m["trained_samples"] < 16 for m in metrics)
    full = _train(tokenizer, _config(easy_tasks, **settings), tmp_path / "full", focused=True)
    assert [m["trained_samples"] for m in full] == [16, 16, 16]
    assert [m["optimizer_updates"] for m in full] == [2, 2, 2]


class _RecordingBackend:
    """A ``TrainingBackend`` that keeps the learner in this process (``LocalBackend``) and records
    which of its calls the trainer made, in order."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        method = getattr(self.inner, name)

        def recorded(*args, **kwargs):
            self.calls.append(name)
            return method(*args, **kwargs)

        return recorded


def test_the_trainer_hands_its_work_to_any_backend_in_the_documented_order(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    from ftrl_gym.agents.training.local_backend import LocalBackend
    from ftrl_gym.agents.training.rollout import train_env_pool

    config = _config(easy_tasks, epochs=1, max_steps=1, save_every=1)
    pool = train_env_pool(config)
    inner = LocalBackend(config, tmp_path, pool, Policy(tiny_model(tokenizer), tokenizer))
    backend = _RecordingBackend(inner)
    trainer = RLTrainer(config, tmp_path, progress=False, backend=backend)
    try:
        metrics = trainer.train()
    finally:
        trainer.close()
        pool.close()
    assert len(metrics) == 1
    # scheme (a): trajectories of the step's tasks, then 8 responses to each of 4 turn prefixes
    # (one mini-batch of 4 groups: one optimiser update), a checkpoint and the final model
    assert backend.calls == [
        "load_checkpoint",
        "start_generation",
        "play",
        "respond",
        "set_learning_rate",
        "optimizer_step",
        "sync_weights",
        "extra_metrics",
        "save_checkpoint",
        "save_model",
        "close",
    ]
    assert (tmp_path / "final" / "config.json").is_file()
    assert inner.generator is None  # closed through the trainer


def test_a_policy_and_a_backend_together_are_refused(tokenizer, easy_tasks: Path, tmp_path) -> None:
    policy = Policy(tiny_model(tokenizer), tokenizer)
    with pytest.raises(ValueError, match="policy= builds the LocalBackend"):
        RLTrainer(_config(easy_tasks), tmp_path, policy=policy, backend=object())
