"""The RL learning rate per training step: linear warmup, then constant, linear or cosine decay."""

from __future__ import annotations

import math


def scheduled_lr(
    step: int, peak: float, warmup: int, total: int, schedule: str, min_ratio: float
) -> float:
    """The learning rate of training step ``step`` (0-based).

    Args:
        step: Steps taken before this one.
        peak: The learning rate after the warmup (``TrainConfig.lr``).
        warmup: Warmup steps: step ``k < warmup`` takes ``peak * (k + 1) / warmup``.
        total: The run's steps (``max_steps``); the decay reaches its floor at step ``total - 1``.
        schedule: ``constant``, ``linear`` or ``cosine``.
        min_ratio: The floor, as a fraction of ``peak``.

    Returns:
        The learning rate.

    Raises:
        ValueError: ``schedule`` is unknown.
    """
    if schedule not in ("constant", "linear", "cosine"):
        raise ValueError(f"unknown lr schedule {schedule!r}: use constant, linear or cosine")
    if step < warmup:
        return peak * (step + 1) / warmup
    decay_steps = total - 1 - warmup
    if schedule == "constant" or decay_steps <= 0:
        return peak
    progress = min(1.0, (step - warmup) / decay_steps)
    floor = peak * min_ratio
    if schedule == "linear":
        return floor + (peak - floor) * (1.0 - progress)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
