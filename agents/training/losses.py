"""Policy-gradient loss terms: PPO clipped surrogate, low-variance KL to a reference, entropy.

All take per-token tensors of shape ``(B, T)`` and a ``mask`` of generated tokens, and aggregate by
token-mean (every generated token in the mini-batch weighs the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ftrl_gym.agents.training.masked import masked_mean


@dataclass(frozen=True)
class PolicyLoss:
    """The PPO clipped policy loss and its diagnostics."""

    loss: torch.Tensor
    """Scalar loss to minimise (differentiable)."""
    clip_fraction: float
    """Fraction of generated tokens where the clipped branch was taken."""
    approx_kl: float
    """Token-mean of ``old_logp - logp``: how far the policy moved since sampling."""


def ppo_clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
) -> PolicyLoss:
    """PPO's clipped surrogate, ``max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))``, token-mean.

    ``r = exp(logp - old_logp)`` is the importance ratio between the current policy and the one that
    sampled the tokens (Schulman et al. 2017, eq. 7).

    Args:
        logprobs: ``(B, T)`` log-probabilities of the sampled tokens under the current policy.
        old_logprobs: ``(B, T)`` the same under the sampling policy (no gradient).
        advantages: ``(B, T)`` per-token advantages.
        mask: ``(B, T)`` 1.0 on generated tokens.
        clip_low: Lower clip range (ratio floor ``1 - clip_low``).
        clip_high: Upper clip range (ratio ceiling ``1 + clip_high``).

    Returns:
        The loss and its diagnostics.
    """
    log_ratio = logprobs - old_logprobs.detach()
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    mask = mask.float()
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = masked_mean(-log_ratio.detach(), mask)
    return PolicyLoss(masked_mean(per_token, mask), float(clip_fraction), float(approx_kl))


def low_var_kl(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, clamp: float = 10.0
) -> torch.Tensor:
    """Per-token low-variance KL estimate of ``KL(pi || pi_ref)`` (Schulman's k3 estimator).

    ``k3 = exp(ref - logp) - (ref - logp) - 1``, unbiased and always >= 0; clamped to
    ``[-clamp, clamp]`` for numerical safety. See http://joschu.net/blog/kl-approx.html.

    Args:
        logprobs: ``(B, T)`` log-probabilities under the current policy.
        ref_logprobs: ``(B, T)`` log-probabilities under the frozen reference policy.
        clamp: Bound on the per-token estimate.

    Returns:
        ``(B, T)`` per-token KL estimates.
    """
    log_ratio = ref_logprobs - logprobs
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
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)

