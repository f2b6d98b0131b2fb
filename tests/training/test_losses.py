"""PPO clipped loss, low-variance KL and entropy against hand-computed values."""

import math

import pytest

torch = pytest.importorskip("torch")

from ftrl_gym.agents.training.losses import (
    entropy_from_logits,
    kl_loss,
    low_var_kl,
    ppo_clipped_policy_loss,
)
from ftrl_gym.agents.training.masked import masked_mean


def _ratios_case():
    ratios = torch.tensor([[1.5, 0.5, 1.1, 0.7]])
    logprobs = torch.log(ratios).requires_grad_(True)
    return logprobs, torch.zeros(1, 4), torch.tensor([[1.0, 1.0, -1.0, -1.0]])


def test_ppo_loss_takes_the_pessimistic_branch_per_token():
    # per token: max(-1.5, -1.2) = -1.2; max(-0.5, -0.8) = -0.5; 1.1; max(0.7, 0.8) = 0.8
    logprobs, old, advantages = _ratios_case()
    result = ppo_clipped_policy_loss(logprobs, old, advantages, torch.ones(1, 4))
    assert result.loss.item() == pytest.approx((-1.2 - 0.5 + 1.1 + 0.8) / 4)
    assert result.clip_fraction == pytest.approx(0.5)
    expected_kl = -(math.log(1.5) + math.log(0.5) + math.log(1.1) + math.log(0.7)) / 4
    assert result.approx_kl == pytest.approx(expected_kl)


def test_ppo_loss_has_no_gradient_through_clipped_tokens():
    logprobs, old, advantages = _ratios_case()
    ppo_clipped_policy_loss(logprobs, old, advantages, torch.ones(1, 4)).loss.backward()
    grad = logprobs.grad[0].tolist()
    assert grad[0] == 0.0 and grad[3] == 0.0
    assert grad[1] == pytest.approx(-0.5 / 4)  # d(-A r)/d logp = -A r, token-mean over 4


def test_ppo_loss_ignores_masked_tokens():
    logprobs, old, advantages = _ratios_case()
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    result = ppo_clipped_policy_loss(logprobs, old, advantages, mask)
    assert result.loss.item() == pytest.approx((-1.2 - 0.5) / 2)
    assert result.clip_fraction == pytest.approx(0.5)


def test_low_var_kl_matches_k3():
    # ref/p = 0.5: k3 = 0.5 - ln 0.5 - 1 = 0.1931472
    logprobs = torch.log(torch.tensor([[0.5, 0.3]]))
    ref = torch.log(torch.tensor([[0.25, 0.3]]))
    assert low_var_kl(logprobs, ref).tolist()[0] == pytest.approx([0.1931472, 0.0], abs=1e-6)
    assert kl_loss(logprobs, ref, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.1931472)


def test_low_var_kl_is_clamped():
    huge = low_var_kl(torch.tensor([[-50.0]]), torch.tensor([[0.0]]))
    assert huge.item() == 10.0


def test_entropy_of_known_distributions():
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)]]])
    # uniform over 2: ln 2; [0.25, 0.75]: -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.5623351
    assert entropy_from_logits(logits).tolist()[0] == pytest.approx([math.log(2), 0.5623351], abs=1e-6)
    token_mean = masked_mean(entropy_from_logits(logits), torch.tensor([[1.0, 0.0]]))  # as the trainer does
    assert token_mean.item() == pytest.approx(math.log(2))
