"""What ``RLTrainer`` hands off: a training backend generates, updates the learner, syncs and saves.

The trainer owns the schedule (data order, episode specs, turn prefixes, advantages, mini-batches,
metrics, validation and checkpoint timing); a backend owns where the work runs. ``LocalBackend``
runs it in this process; ``distributed.ray_backend.RayBackend`` on Ray rollout workers and learner
ranks (replicated, or sharded with FSDP2). A run is the same arithmetic on either, so its numbers
agree up to float rounding and either resumes from the other's checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ftrl_gym.agents.training.generation import SamplingSettings
from ftrl_gym.agents.training.rollout import Episode, EpisodeSpec
from ftrl_gym.agents.training.samples import Prefix, Sample


class TrainingBackend(Protocol):
    """Generation, optimiser steps, weight sync and save/load for ``RLTrainer``.

    The trainer calls ``load_checkpoint`` once, then ``start_generation`` with the step it resumed
    at, then per step: ``play`` / ``respond``, ``set_learning_rate``, ``recompute_old_logprobs``
    (when configured), ``optimizer_step`` per mini-batch, ``sync_weights``; and ``close`` last.
    """

    def load_checkpoint(self) -> dict[str, Any] | None:
        """Load the newest checkpoint into the learner; the trainer's part of its state, or None."""
        ...

    def start_generation(self, step: int) -> None:
        """Start the generators with the learner's weights, version ``step``."""
        ...

    def play(self, specs: list[EpisodeSpec], settings: SamplingSettings, step: int) -> list[Episode]:
        """Play the episodes (``step``: the learner's version, for staleness)."""
        ...

    def respond(self, prefixes: list[Prefix], settings: SamplingSettings, step: int) -> list[Sample]:
        """Scheme (a): ``settings.n`` scored responses to each turn prefix."""
        ...

    def set_learning_rate(self, lr: float) -> None:
        """Use ``lr`` for the next optimiser steps."""
        ...

    def recompute_old_logprobs(self, samples: list[Sample]) -> None:
        """Replace the samples' old logprobs by the learner's (``update.recompute_old_logprobs``)."""
        ...

    def optimizer_step(self, mini: list[Sample]) -> dict[str, float]:
        """One optimiser update over a mini-batch: ``update.LOSS_STATS``, ``grad_norm``, ``stepped``."""
        ...

    def sync_weights(self, step: int) -> None:
        """After the update to version ``step``: give the generators the new weights (or let them lag
        as configured)."""
        ...

    def generator_at(self, step: int) -> None:
        """Make sure the generators hold version ``step`` (validation scores exactly this policy)."""
        ...

    def save_checkpoint(self, step: int, data_state: dict[str, Any]) -> Path:
        """Write checkpoint ``step``: weights, optimiser, torch RNG and the trainer's ``data_state``."""
        ...

    def save_model(self, folder: Path) -> None:
        """Write the current policy as a Hugging Face folder."""
        ...

    def extra_metrics(self) -> dict[str, Any]:
        """The backend's metrics of the step just taken (merged into the step's row)."""
        ...

    def close(self) -> None:
        """Stop the generators and learners."""
        ...
