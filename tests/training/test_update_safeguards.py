"""The update's safeguards in the real trainer: recomputed old logprobs, skipped bad updates."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from training_helpers import tiny_model

torch = pytest.importorskip("torch")

from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.policy import Policy, make_batch
from ftrl_gym.agents.training.samples import Sample
from ftrl_gym.agents.training.trainer import RLTrainer
from ftrl_gym.agents.training.update import recompute_old_logprobs


def _samples(advantage: float = 1.0, generated: tuple[float, float] = (-1.0, -2.0)) -> list[Sample]:
    # two responses to different contexts (no shared prompt): 3 context ids, 2 generated ids
    rows = ([11, 12, 13, 21, 22], [14, 15, 16, 23, 24])
    return [
        Sample(
            list(ids),
            [0, 0, 0, 1, 1],
            [0.0, 0.0, 0.0, *generated],
            f"g{i}",
            1.0,
            advantages=[0.0, 0.0, 0.0, advantage, advantage],
        )
        for i, ids in enumerate(rows)
    ]


def test_recompute_replaces_old_logprobs_with_the_learners(tokenizer) -> None:
    policy = Policy(tiny_model(tokenizer), tokenizer)
    samples = _samples()
    recompute_old_logprobs(policy, samples, micro_batch_size=1)
    batch = make_batch([s.token_ids for s in samples], [s.loss_mask for s in samples], 0)
    with torch.no_grad():
        expected, _ = policy.forward(batch)  # (2, 4): column t predicts token t + 1
    for row, sample in enumerate(samples):
        assert sample.rollout_logprobs == [0.0, 0.0, 0.0, -1.0, -2.0]
        assert sample.logprobs[:3] == [0.0, 0.0, 0.0]
        assert sample.logprobs[3:] == pytest.approx(expected[row, 2:].tolist(), abs=1e-6)
        # a random 49k-token model: every logprob is near -ln(49152) = -10.8
        assert all(-13.0 < value < -9.0 for value in sample.logprobs[3:])


def _trainer(tokenizer, easy_tasks: Path, out: Path, **overrides) -> RLTrainer:
    settings = {
        "env_ids": ["FTRL-Custom-v0"],
        "tasks": str(easy_tasks),
        "train_tasks": 4,
        "prompts_per_step": 2,
        "rollouts_per_prompt": 2,
        "mini_batch_size": 1,
        "max_new_tokens": 4,
        "max_context_tokens": 256,
        "kl_coef": 0.0,
        "lr": 1e-2,
        **overrides,
    }
    config = build_config(overrides=settings)
    return RLTrainer(config, out, policy=Policy(tiny_model(tokenizer), tokenizer), progress=False)


def test_a_non_finite_update_is_skipped_and_counted(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    trainer = _trainer(tokenizer, easy_tasks, tmp_path)
    try:
        before = {k: v.clone() for k, v in trainer.backend.policy.model.state_dict().items()}
        samples = _samples(advantage=float("nan"))[:1] + _samples(advantage=1.0)[1:]
        stats = trainer._update(samples)
        # two mini-batches of one group each: the NaN one is skipped, the finite one steps
        assert stats["optimizer_updates"] == 2
        assert stats["skipped_updates"] == 1
        assert math.isfinite(stats["grad_norm"])
        after = trainer.backend.policy.model.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before)
        assert all(torch.isfinite(v).all() for v in after.values())
    finally:
        trainer.close()


def test_recomputed_old_logprobs_start_the_ratio_at_one(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    trainer = _trainer(
        tokenizer, easy_tasks, tmp_path, recompute_old_logprobs=True, tis_cap=2.0, mini_batch_size=2
    )
    try:
        stats = trainer._update(_samples(generated=(-20.0, -20.0)))
        # one update, before which old == current: log-ratio 0 everywhere, nothing clipped
        assert stats["optimizer_updates"] == 1 and stats["skipped_updates"] == 0
        assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-6)
        assert stats["clip_fraction"] == 0.0
        # learner ~-10.8 over generator -20: exp(9.2) per token, capped at 2; A = 1, r = 1
        assert stats["policy_loss"] == pytest.approx(-2.0, abs=1e-5)
    finally:
        trainer.close()


def test_trained_tokens_count_only_the_generated_tokens_of_trained_samples(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    trainer = _trainer(tokenizer, easy_tasks, tmp_path, skip_zero_advantage=True)
    try:
        samples = _samples(advantage=1.0)[:1] + _samples(advantage=0.0)[1:]
        stats = trainer._update(samples)
        # 5 ids per sample, 2 generated; the zero-advantage sample sits out
        assert stats["trained_samples"] == 1
        assert stats["trained_tokens"] == 2
    finally:
        trainer.close()
