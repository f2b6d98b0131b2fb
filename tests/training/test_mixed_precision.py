"""Mixed precision: float32 master weights and AdamW state under bf16 compute learn at lr 1e-6."""

from __future__ import annotations

import pytest
from training_helpers import tiny_model

torch = pytest.importorskip("torch")

from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.samples import Sample
from ftrl_gym.agents.training.update import (
    build_optimizer,
    build_reference,
    clip_and_step,
    micro_batch_loss,
    recompute_old_logprobs,
)

STEPS = 10
LOSS_TOLERANCE = 0.002
"""Most the bf16-compute loss may differ from the float32 one at any of the 10 steps (absolute, on
a loss near -1.01; measured 0.00028: bf16 keeps 8 mantissa bits, a rounding of 2^-9 = 0.2%)."""


def _samples() -> list[Sample]:
    rows = ([11, 12, 13, 21, 22, 25], [14, 15, 16, 23, 24, 26], [17, 18, 19, 27, 28, 29])
    return [
        Sample(list(ids), [0, 0, 0, 1, 1, 1], [0.0] * 6, f"g{i}", 1.0, advantages=[1.0] * 6)
        for i, ids in enumerate(rows)
    ]


def _train(tokenizer, dtype: str) -> tuple[list[float], float]:
    """Ten AdamW steps at lr 1e-6 on a fixed batch: the losses, the share of weights that moved."""
    config = build_config(overrides={"lr": 1e-6, "dtype": dtype})
    samples = _samples()
    recompute_old_logprobs(Policy(tiny_model(tokenizer), tokenizer), samples, 8)  # float32 sampler
    policy = Policy(tiny_model(tokenizer), tokenizer, dtype=dtype)
    reference = build_reference(policy, config)
    optimizer = build_optimizer(policy, config)
    start = [p.detach().clone() for p in policy.model.parameters()]
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        terms = micro_batch_loss(policy, reference, config, samples)
        terms["loss"].backward()
        assert clip_and_step(policy, optimizer, config.max_grad_norm)[1]
        losses.append(float(terms["loss"].detach()))
    moved = sum(int((p != s).sum()) for p, s in zip(policy.model.parameters(), start))
    total = sum(s.numel() for s in start)
    return losses, moved / total


def test_bf16_compute_keeps_float32_master_weights_and_reference_in_bf16(tokenizer) -> None:
    policy = Policy(tiny_model(tokenizer), tokenizer, dtype="bfloat16")
    reference = build_reference(policy, build_config(overrides={"dtype": "bfloat16"}))
    optimizer = build_optimizer(policy, build_config())
    assert {p.dtype for p in policy.model.parameters()} == {torch.float32}
    assert {p.dtype for p in reference.model.parameters()} == {torch.bfloat16}
    stepped = [p for group in optimizer.param_groups for p in group["params"]]
    assert {p.dtype for p in stepped} == {torch.float32}


def test_bf16_compute_moves_the_weights_and_matches_the_float32_loss(tokenizer) -> None:
    fp32_losses, fp32_moved = _train(tokenizer, "float32")
    bf16_losses, bf16_moved = _train(tokenizer, "bfloat16")
    assert fp32_moved >= 0.99
    assert bf16_moved >= 0.99
    # PPO with A = 1 and ratio near 1: loss about -1, minus 0.001 x entropy (about 10.8 nats)
    assert fp32_losses[0] == pytest.approx(-1.0108, abs=0.002)
    for fp32, bf16 in zip(fp32_losses, bf16_losses):
        assert bf16 == pytest.approx(fp32, abs=LOSS_TOLERANCE)


def test_stepping_bf16_weights_directly_barely_moves_them(tokenizer) -> None:
    """Why the master copy: AdamW on bf16 parameters rounds most lr-1e-6 updates away."""
    model = tiny_model(tokenizer).to(torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)
    start = [p.detach().clone() for p in model.parameters()]
    ids = torch.tensor([[11, 12, 13, 21, 22, 25]])
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    moved = sum(int((p != s).sum()) for p, s in zip(model.parameters(), start))
    assert moved / sum(s.numel() for s in start) < 0.10
