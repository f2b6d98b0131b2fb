"""The driver: ``RLTrainer``'s schedule (data, batches, advantages, checkpoints) with Ray actors doing the work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftrl_gym.agents.training.config import ConfigError, TrainConfig
from ftrl_gym.agents.training.distributed.cluster import connect, end_actors, learner_placement
from ftrl_gym.agents.training.distributed.fleet import RolloutFleet
from ftrl_gym.agents.training.distributed.learner import Learner
from ftrl_gym.agents.training.distributed.sharding import deal_in_lockstep
from ftrl_gym.agents.training.distributed.versions import needs_broadcast
from ftrl_gym.agents.training.generation import SamplingSettings
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.rollout import Episode, EpisodeSpec
from ftrl_gym.agents.training.samples import Prefix, Sample
from ftrl_gym.agents.training.trainer import RLTrainer, generated_tokens, micro_batches


class DistributedTrainer(RLTrainer):
    """GRPO / Reinforce++ with rollout worker actors and data-parallel learner actors on Ray.

    The driver runs ``RLTrainer``'s loop unchanged (task order, episode specs, turn prefixes,
    advantages, mini-batch shuffling, metrics, checkpoint cadence); what it hands off is the work:
    episodes and scheme (a) responses go to the ``RolloutFleet``, optimiser updates to the
    ``Learner`` ranks, and after each update the learner's weights go to the workers with the new
    step as their version: through the object store, or (``weight_sync=collective``) broadcast by
    learner rank 0 in a ``torch.distributed`` group with the workers. Sampling is seeded per
    request, so the run reproduces ``RLTrainer`` with the same settings up to float rounding.
    Rerunning with the same ``out_dir`` resumes from the newest checkpoint (written by learner
    rank 0, same format as ``RLTrainer``'s).

    Args:
        config: The settings (its distributed block places the actors).
        out_dir: Run folder (must be reachable from learner rank 0's node).
        progress: Show a tqdm bar.
    """

    def __init__(self, config: TrainConfig, out_dir: str | Path, progress: bool = True) -> None:
        if config.lora_rank:
            raise ConfigError(
                "lora_rank runs in the single-process trainer: LoRA on Ray learners is not built"
            )
        self._owns_ray = connect(config)
        self.learners: list[Any] = []
        self.fleet: RolloutFleet | None = None
        try:
            super().__init__(config, out_dir, policy=None, progress=progress)
        except BaseException:
            self.close()
            raise

    # --- actors ---------------------------------------------------------------------------------

    def _build_learner(self, policy: Policy | None) -> None:
        """Start the learner ranks and join them in one process group; the driver holds no model."""
        import ray

        if policy is not None:
            raise ValueError(
                "DistributedTrainer builds its models in the actors: set config.model instead"
            )
        actor = ray.remote(Learner).options(**learner_placement(self.config).options())
        size = self.config.num_learners
        payload = self.config.to_dict()
        self.learners = [actor.remote(payload, r, size, str(self.out_dir)) for r in range(size)]
        init_method = ray.get(self.learners[0].rendezvous.remote())
        ray.get([learner.join_group.remote(init_method) for learner in self.learners])
        self.policy = None  # type: ignore[assignment]
        self.reference = None
        self.optimizer = None  # type: ignore[assignment]
        self.renderer = None  # type: ignore[assignment]

    def _build_generator(self) -> RolloutFleet:  # type: ignore[override]
        self.fleet = RolloutFleet(self.config, self.learners[0])
        self._broadcast()
        return self.fleet

    @property
    def _sharded(self) -> bool:
        return self.config.learner_sharding == "fsdp"

    def _on_every_rank(self, method: str, *args: Any) -> Any:
        """Call a learner method on every rank (sharded ranks' collectives); rank 0's result."""
        import ray

        return ray.get([getattr(learner, method).remote(*args) for learner in self.learners])[0]

    def _broadcast(self) -> None:
        assert self.fleet is not None
        if self._sharded:
            self._on_every_rank("gather_weights")  # rank 0 then holds the full weights to send
        collective = self.config.weight_sync == "collective"
        weights = None if collective else self.learners[0].weights.remote()
        self.fleet.broadcast(weights, self.step)

    def _sync_weights(self) -> None:
        """Broadcast the new weights unless the workers' may lag ``max_staleness`` steps more."""
        assert self.fleet is not None
        if needs_broadcast(self.step, self.fleet.version, self.config.max_staleness):
            self._broadcast()

    def _generator_at_current_step(self) -> None:
        """Validation scores this step's policy: broadcast it even where rollouts may lag."""
        assert self.fleet is not None
        if self.fleet.version != self.step:
            self._broadcast()

    # --- work -----------------------------------------------------------------------------------

    def _play(self, specs: list[EpisodeSpec], settings: SamplingSettings) -> list[Episode]:
        assert self.fleet is not None
        return self.fleet.play(specs, settings, self.step)

    def _turn_samples(self, batch: list[Prefix]) -> list[Sample]:
        assert self.fleet is not None
        settings = self._sampling_settings(self.config.rollouts_per_prompt)
        return self.fleet.respond(batch, settings, self.step)

    def _recompute_old_logprobs(self, samples: list[Sample]) -> None:
        """Learner rank 0 scores the batch (every rank holds the same weights)."""
        import ray

        if self._sharded:  # every sharded rank takes part in each forward pass
            scored = self._on_every_rank("recompute_old_logprobs", samples)
        else:
            scored = ray.get(self.learners[0].recompute_old_logprobs.remote(samples))
        for sample, done in zip(samples, scored):
            sample.logprobs, sample.rollout_logprobs = done.logprobs, done.rollout_logprobs

    def _set_learning_rate(self, lr: float) -> None:
        """Every learner rank takes this step's learning rate."""
        import ray

        ray.get([learner.set_learning_rate.remote(lr) for learner in self.learners])

    def _optimizer_step(self, mini: list[Sample]) -> dict[str, float]:
        """Deal the mini-batch's micro-batches round-robin to the ranks; they all-reduce and step."""
        import ray

        micro = micro_batches(mini, self.config.micro_batch_size, self.config.micro_batch_tokens)
        total = generated_tokens(mini)
        size = len(self.learners)
        if self._sharded:
            dealt = deal_in_lockstep(micro, size)
            calls = [
                learner.optimizer_step.remote(
                    [b for b, _ in dealt[rank]], total, [g for _, g in dealt[rank]]
                )
                for rank, learner in enumerate(self.learners)
            ]
            return ray.get(calls)[0]
        results = ray.get(
            [
                learner.optimizer_step.remote(micro[rank::size], total)
                for rank, learner in enumerate(self.learners)
            ]
        )
        return results[0]

    def _extra_metrics(self) -> dict[str, Any]:
        assert self.fleet is not None
        counters = self.fleet.counters
        return {
            "rollout_staleness": self.fleet.take_staleness(),
            "weight_version": self.fleet.version,
            "worker_restarts": counters.restarts,
            "rerun_items": counters.rerun_items,
            "broadcast_s": round(counters.broadcast_s, 3),
            **self.fleet.take_overhead(),
        }

    # --- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Learner rank 0 writes the weights, optimiser and torch RNG with the driver's state."""
        import ray

        if self._sharded:
            return Path(self._on_every_rank("save_checkpoint", self.step, self._data_state()))
        folder = ray.get(self.learners[0].save_checkpoint.remote(self.step, self._data_state()))
        return Path(folder)

    def _resume(self) -> None:
        import ray

        states = ray.get([learner.load_checkpoint.remote() for learner in self.learners])
        if states[0] is not None:
            self._restore_data_state(states[0])

    def _save_model(self, folder: Path) -> None:
        import ray

        if self._sharded:
            self._on_every_rank("save_model", str(folder))
            return
        ray.get(self.learners[0].save_model.remote(str(folder)))

    def close(self) -> None:
        """End the workers and learners; shut Ray down when this trainer started it."""
        import ray

        if getattr(self, "pool", None) is not None:
            self.pool.close()
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None
        end_actors(self.learners)
        self.learners = []
        for reporter in getattr(self, "reporters", []):
            reporter.close()
        self.reporters = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
