"""Weight version tags: which optimiser step a rollout's weights came from, and how stale it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

UNLOADED = -1
"""Version of a worker that holds no broadcast weights yet (fresh or restarted)."""


@dataclass(frozen=True)
class Tagged(Generic[T]):
    """A rollout worker's output, tagged with the weight version that produced it.

    Attributes:
        version: The learner step whose weights generated ``items`` (0: the starting weights).
        items: Episodes or samples, in the order of the request.
        busy_s: Seconds the worker spent on the request.
        generate_s: Of those, seconds inside the generator (the rest: envs and tokenising).
    """

    version: int
    items: list[T]
    busy_s: float = 0.0
    generate_s: float = 0.0


class StaleRolloutError(RuntimeError):
    """A rollout came from weights older than ``max_staleness`` allows."""


def staleness(learner_version: int, rollout_version: int) -> int:
    """Optimiser steps between the weights a rollout used and the learner's current weights.

    Raises:
        StaleRolloutError: The rollout used no broadcast weights at all.
    """
    if rollout_version == UNLOADED:
        raise StaleRolloutError("a rollout worker generated before any weights reached it")
    return learner_version - rollout_version


def needs_broadcast(learner_version: int, workers_version: int, max_staleness: int) -> bool:
    """Whether the workers must get new weights before the next rollouts to stay within bounds."""
    return workers_version == UNLOADED or learner_version - workers_version > max_staleness
