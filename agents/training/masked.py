"""Masked reductions over token tensors (mean, variance, whitening) used by losses and advantages."""

from __future__ import annotations

import torch


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` where ``mask`` is 1."""
    return (values * mask).sum()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is 1 (token-mean aggregation).

    Args:
        values: Any shape.
        mask: Same shape as ``values``, 1.0 where a value counts.

    Returns:
        A scalar tensor; 0 when the mask is empty.
    """
    count = mask.sum()
    return masked_sum(values, mask) / count.clamp(min=1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``values`` over masked positions (Bessel-corrected when ``unbiased``)."""
    mean = masked_mean(values, mask)
    count = mask.sum()
    squared = masked_sum((values - mean) ** 2, mask)
    denominator = (count - 1.0) if unbiased else count
    return squared / denominator.clamp(min=1.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Shift and scale ``values`` to zero mean and unit variance over masked positions."""
    mean = masked_mean(values, mask)
    return (values - mean) * torch.rsqrt(masked_var(values, mask) + eps)
