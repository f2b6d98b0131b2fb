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


def _one_token(log_ratio: float, advantage: float):
    logprobs = torch.tensor([[log_ratio]], requires_grad=True)
    return logprobs, torch.zeros(1, 1), torch.tensor([[advantage]]), torch.ones(1, 1)


def test_dual_clip_caps_a_negative_advantage_at_c_with_no_gradient():
    # r = 50, A = -1: PPO's max(50, 1.2) = 50 with gradient -A r = 50; dual clip: min(50, 3) = 3
    logprobs, old, advantages, mask = _one_token(math.log(50.0), -1.0)
    result = ppo_clipped_policy_loss(logprobs, old, advantages, mask, dual_clip=3.0)
    result.loss.backward()
    assert result.loss.item() == pytest.approx(3.0)
    assert logprobs.grad.item() == 0.0
    assert result.dual_clip_fraction == 1.0


def test_without_dual_clip_the_same_token_costs_fifty():
    logprobs, old, advantages, mask = _one_token(math.log(50.0), -1.0)
    result = ppo_clipped_policy_loss(logprobs, old, advantages, mask, dual_clip=0.0)
    result.loss.backward()
    assert result.loss.item() == pytest.approx(50.0, rel=1e-5)
    assert logprobs.grad.item() == pytest.approx(50.0, rel=1e-5)
    assert result.dual_clip_fraction == 0.0


def test_dual_clip_leaves_positive_advantages_and_small_ratios_alone():
    # A = +1, r = 50: max(-50, -1.2) = -1.2; A = -1, r = 2: max(2, 1.2) = 2 < 3
    logprobs = torch.log(torch.tensor([[50.0, 2.0]]))
    result = ppo_clipped_policy_loss(
        logprobs, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]), torch.ones(1, 2)
    )
    assert result.loss.item() == pytest.approx((-1.2 + 2.0) / 2)
    assert result.dual_clip_fraction == 0.0


def test_dual_clip_below_one_is_refused():
    logprobs, old, advantages, mask = _one_token(0.0, 1.0)
    with pytest.raises(ValueError, match="dual_clip must be 0 \\(off\\) or above 1; got 0.5"):
        ppo_clipped_policy_loss(logprobs, old, advantages, mask, dual_clip=0.5)


def test_log_ratio_is_clamped_at_20_before_exp():
    # logp - old = 100: exp(100) overflows float32; clamped, r = exp(20) and no gradient flows
    logprobs, old, advantages, mask = _one_token(100.0, -1.0)
    result = ppo_clipped_policy_loss(logprobs, old, advantages, mask, dual_clip=0.0)
    result.loss.backward()
    assert result.loss.item() == pytest.approx(math.exp(20.0), rel=1e-5)
    assert logprobs.grad.item() == 0.0


def test_kl_of_a_huge_log_ratio_is_clamped_with_a_finite_gradient():
    # ref - logp = 100: unclamped exp(100) = inf in float32 and the gradient 0 * inf = NaN
    logprobs = torch.tensor([[-100.0, 100.0]], requires_grad=True)
    kl = low_var_kl(logprobs, torch.zeros(1, 2))
    # d = 100 -> clamped to 20: exp(20) - 21 >> 10 -> 10; d = -100 -> -20: exp(-20) + 19 -> 10
    assert kl.tolist()[0] == [10.0, 10.0]
    kl.sum().backward()
    assert torch.isfinite(logprobs.grad).all()
    assert logprobs.grad.tolist()[0] == [0.0, 0.0]


def test_kl_gradient_inside_the_clamp_is_k3s():
    # d = ref - logp = ln 2: k3 = 2 - ln 2 - 1 = 0.3068528; dk3/dlogp = -(exp(d) - 1) = -1
    logprobs = torch.tensor([[0.0]], requires_grad=True)
    kl = low_var_kl(logprobs, torch.tensor([[math.log(2.0)]]))
    kl.sum().backward()
    assert kl.item() == pytest.approx(0.3068528, abs=1e-6)
    assert logprobs.grad.item() == pytest.approx(-1.0, abs=1e-6)


def test_truncated_importance_weights_are_the_capped_probability_ratio():
    from ftrl_gym.agents.training.losses import truncated_importance_weights

    learner = torch.log(torch.tensor([[0.5, 0.25, 0.9]]))
    rollout = torch.log(torch.tensor([[0.25, 0.5, 0.3]]))
    # ratios 2, 0.5, 3 -> capped at 2.5: 2, 0.5, 2.5
    weights = truncated_importance_weights(learner, rollout, cap=2.5)
    assert weights.tolist()[0] == pytest.approx([2.0, 0.5, 2.5], abs=1e-6)


def test_token_weights_scale_each_tokens_policy_loss():
    # r = 1 on both tokens, A = 1: per token -1, weighted by [2, 0.5] -> mean -1.25
    result = ppo_clipped_policy_loss(
        torch.zeros(1, 2),
        torch.zeros(1, 2),
        torch.ones(1, 2),
        torch.ones(1, 2),
        token_weights=torch.tensor([[2.0, 0.5]]),
    )
    assert result.loss.item() == pytest.approx(-1.25)


def test_clip_and_step_skips_a_non_finite_gradient():
    from types import SimpleNamespace

    from ftrl_gym.agents.training.update import clip_and_step

    model = torch.nn.Linear(2, 1)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    (model(torch.tensor([[1.0, float("nan")]])).sum()).backward()
    norm, stepped = clip_and_step(SimpleNamespace(model=model), optimizer, 1.0)
    assert math.isnan(norm) and not stepped
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())
    assert optimizer.state_dict()["state"] == {}
    # a finite gradient then steps: d(w x + b)/db = 1, norm of [1, 2, 1] = sqrt(6)
    (model(torch.tensor([[1.0, 2.0]])).sum()).backward()
    norm, stepped = clip_and_step(SimpleNamespace(model=model), optimizer, 0.0)
    assert stepped and norm == pytest.approx(math.sqrt(6.0))
    assert not torch.equal(before[1], model.bias)
