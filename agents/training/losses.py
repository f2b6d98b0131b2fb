"""Policy-gradient loss terms: PPO clipped surrogate, low-variance KL to a reference, entropy.

All take per-token tensors of shape ``(B, T)`` and a ``mask`` of generated tokens, and aggregate by
token-mean (every generated token in the mini-batch weighs the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ftrl_gym.agents.training.masked import masked_mean


LOG_RATIO_CLAMP = 20.0
"""Bound on a log-ratio before ``exp`` (as verl): ``exp(20)`` is about 4.9e8, far inside float32,
so neither the value nor its gradient can overflow to ``inf`` (and ``0 * inf`` to NaN)."""


@dataclass(frozen=True)
class PolicyLoss:
    """The PPO clipped policy loss and its diagnostics."""

    loss: torch.Tensor
    """Scalar loss to minimise (differentiable)."""
    clip_fraction: float
    """Fraction of generated tokens where the clipped branch was taken."""
    approx_kl: float
    """Token-mean of ``old_logp - logp``: how far the policy moved since sampling."""
    dual_clip_fraction: float = 0.0
    """Fraction of generated tokens where the dual clip (negative advantage, ratio above ``c``)
    bound the loss."""


def ppo_clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float = 3.0,
    token_weights: torch.Tensor | None = None,
) -> PolicyLoss:
    """PPO's clipped surrogate with dual clip, token-mean.

    Per token, ``r = exp(clamp(logp - old_logp, -20, 20))`` is the importance ratio between the
    current policy and the one that sampled the token (Schulman et al. 2017, eq. 7) and the loss is
    ``l = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))``. For ``A < 0`` that grows without
    bound in ``r``: a token the sampler found unlikely but the learner now finds likely (a stale or
    low-precision rollout) can dominate the batch. Dual clip (Ye et al. 2020, "Mastering Complex
    Control in MOBA Games", eq. 5; verl's ``clip_ratio_c``) caps it: for ``A < 0``,
    ``l = min(l, -A c)``, whose gradient is 0 where the cap binds. With ``r = 50, A = -1`` the loss
    is ``3`` (``c = 3``) with gradient 0, not 50 and 50.

    Args:
        logprobs: ``(B, T)`` log-probabilities of the sampled tokens under the current policy.
        old_logprobs: ``(B, T)`` the same under the sampling policy (no gradient).
        advantages: ``(B, T)`` per-token advantages.
        mask: ``(B, T)`` 1.0 on generated tokens.
        clip_low: Lower clip range (ratio floor ``1 - clip_low``).
        clip_high: Upper clip range (ratio ceiling ``1 + clip_high``).
        dual_clip: The cap ``c`` (> 1) on ``r`` for negative advantages; ``0`` turns it off.
        token_weights: ``(B, T)`` per-token factors of the loss (no gradient), e.g. the truncated
            importance weights of :func:`truncated_importance_weights`; None: all 1.

    Returns:
        The loss and its diagnostics.

    Raises:
        ValueError: ``dual_clip`` is neither 0 nor above 1.
    """
    if dual_clip and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be 0 (off) or above 1; got {dual_clip}")
    log_ratio = torch.clamp(logprobs - old_logprobs.detach(), -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    mask = mask.float()
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    dual_fraction = torch.zeros(())
    if dual_clip:
        cap = -advantages * dual_clip
        capped = (advantages < 0) & (per_token > cap)
        per_token = torch.where(capped, cap, per_token)
        dual_fraction = masked_mean(capped.float(), mask)
    if token_weights is not None:
        per_token = per_token * token_weights.detach()
    approx_kl = masked_mean(-log_ratio.detach(), mask)
    return PolicyLoss(
        masked_mean(per_token, mask), float(clip_fraction), float(approx_kl), float(dual_fraction)
    )


def truncated_importance_weights(
    learner_old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, cap: float
) -> torch.Tensor:
    """Truncated importance-sampling weights ``min(exp(old_learner - old_rollout), cap)``.

    A generator in low precision (a bf16 vLLM engine) does not sample from exactly the distribution
    the learner computes. The PPO ratio then uses the learner's own logprobs of the batch before the
    update as the old policy, and this weight (no gradient) corrects for the sampler:
    ``E_rollout[w g]`` with the untruncated ``w = pi_learner / pi_rollout`` equals
    ``E_learner[g]``; truncating at ``cap`` bounds the variance at a small bias (Yao et al. 2025,
    "Your efficient RL framework secretly brings you off-policy RL training"; verl's
    ``tis_imp_ratio_cap``).

    Args:
        learner_old_logprobs: ``(B, T)`` the learner's logprobs of the sampled tokens, before the
            update.
        rollout_logprobs: ``(B, T)`` the generator's logprobs of the same tokens.
        cap: Upper bound on a weight (> 0).

    Returns:
        ``(B, T)`` weights in ``(0, cap]``.
    """
    if cap <= 0:
        raise ValueError(f"the importance-weight cap must be positive; got {cap}")
    log_ratio = torch.clamp(
        learner_old_logprobs - rollout_logprobs, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP
    )
    return torch.clamp(torch.exp(log_ratio.detach()), max=cap)


def low_var_kl(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, clamp: float = 10.0
) -> torch.Tensor:
    """Per-token low-variance KL estimate of ``KL(pi || pi_ref)`` (Schulman's k3 estimator).

    ``k3 = exp(d) - d - 1`` with ``d = ref - logp``, unbiased and always >= 0. ``d`` is clamped to
    ``[-20, 20]`` before ``exp`` (otherwise ``d = 100`` gives ``exp(d) = inf`` in float32 and a NaN
    gradient through the outer clamp) and the estimate to ``[-clamp, clamp]``, as verl does. See
    http://joschu.net/blog/kl-approx.html.

    Args:
        logprobs: ``(B, T)`` log-probabilities under the current policy.
        ref_logprobs: ``(B, T)`` log-probabilities under the frozen reference policy.
        clamp: Bound on the per-token estimate.

    Returns:
        ``(B, T)`` per-token KL estimates.
    """
    log_ratio = torch.clamp(ref_logprobs - logprobs, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return torch.clamp(torch.exp(log_ratio) - log_ratio - 1.0, min=-clamp, max=clamp)


def kl_loss(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Token-mean of :func:`low_var_kl` over generated tokens."""
    return masked_mean(low_var_kl(logprobs, ref_logprobs), mask.float())


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position.

    Args:
        logits: ``(B, T, V)`` unnormalised log-probabilities.

    Returns:
        ``(B, T)`` entropies in nats.
    """
    return entropy_from_logprobs(torch.log_softmax(logits.float(), dim=-1))


def entropy_from_logprobs(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy at each position from normalised log-probabilities over the last dimension."""
    return -(log_probs.exp() * log_probs).sum(dim=-1)

