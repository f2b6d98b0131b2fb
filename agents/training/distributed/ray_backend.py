"""``RayBackend``: ``RLTrainer``'s work on Ray: rollout worker actors and learner rank actors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftrl_gym.agents.training.config import ConfigError, TrainConfig
from ftrl_gym.agents.training.distributed.cluster import connect, end_actors, learner_placement
from ftrl_gym.agents.training.distributed.fleet import RolloutFleet
from ftrl_gym.agents.training.distributed.sharding import deal_in_lockstep
from ftrl_gym.agents.training.distributed.versions import needs_broadcast
from ftrl_gym.agents.training.generation import SamplingSettings
from ftrl_gym.agents.training.learner import Learner
from ftrl_gym.agents.training.rollout import Episode, EpisodeSpec
from ftrl_gym.agents.training.samples import Prefix, Sample
from ftrl_gym.agents.training.update import generated_tokens, micro_batches


class RayBackend:
    """GRPO / Reinforce++ work on Ray: rollout worker actors and data-parallel learner actors.

    ``RLTrainer(config, out_dir, backend=RayBackend(config, out_dir))`` runs the trainer's schedule
    unchanged (task order, episode specs, turn prefixes, advantages, mini-batch shuffling, metrics,
    checkpoint cadence); this backend hands the work off: episodes and scheme (a) responses go to
    the ``RolloutFleet``, optimiser updates to the ``Learner`` ranks, and after each update the
    learner's weights go to the workers with the new step as their version: through the object
    store, or (``weight_sync=collective``) broadcast by learner rank 0 in a ``torch.distributed``
    group with the workers. Sampling is seeded per request, so the run reproduces ``LocalBackend``
    with the same settings up to float rounding. Checkpoints are written by learner rank 0 in
    ``LocalBackend``'s format, so either resumes from the other's.

    Args:
        config: The settings (its distributed block places the actors).
        out_dir: Run folder (must be reachable from learner rank 0's node).

    Raises:
        ConfigError: ``lora_rank`` is set (LoRA trains in one process).
        ClusterError: The Ray cluster cannot be reached or lacks the resources asked for.
    """

    def __init__(self, config: TrainConfig, out_dir: str | Path) -> None:
        if config.lora_rank:
            raise ConfigError(
                "lora_rank runs in the single-process trainer: LoRA on Ray learners is not built"
            )
        self.config = config
        self.out_dir = Path(out_dir)
        self._owns_ray = connect(config)
        self.learners: list[Any] = []
        self.fleet: RolloutFleet | None = None
        try:
            self._start_learners()
        except BaseException:
            self.close()
            raise

    def _start_learners(self) -> None:
        """Start the learner ranks and join them in one process group; the driver holds no model."""
        import ray

        actor = ray.remote(Learner).options(**learner_placement(self.config).options())
        size = self.config.num_learners
        payload = self.config.to_dict()
        self.learners = [actor.remote(payload, r, size, str(self.out_dir)) for r in range(size)]
        init_method = ray.get(self.learners[0].rendezvous.remote())
        ray.get([learner.join_group.remote(init_method) for learner in self.learners])

    def start_generation(self, step: int) -> None:
        """Start the rollout workers and send them the learner's weights as version ``step``."""
        self.fleet = RolloutFleet(self.config, self.learners[0])
        self._broadcast(step)

    def _fleet(self) -> RolloutFleet:
        if self.fleet is None:
            raise RuntimeError("start_generation first")
        return self.fleet

    @property
    def _sharded(self) -> bool:
        return self.config.learner_sharding == "fsdp"

    def _on_every_rank(self, method: str, *args: Any) -> Any:
        """Call a learner method on every rank (sharded ranks' collectives); rank 0's result."""
        import ray

        return ray.get([getattr(learner, method).remote(*args) for learner in self.learners])[0]

    def _broadcast(self, step: int) -> None:
        if self._sharded:
            self._on_every_rank("gather_weights")  # rank 0 then holds the full weights to send
        collective = self.config.weight_sync == "collective"
        weights = None if collective else self.learners[0].weights.remote()
        self._fleet().broadcast(weights, step)

    def sync_weights(self, step: int) -> None:
        """Broadcast the new weights unless the workers' may lag ``max_staleness`` steps more."""
        if needs_broadcast(step, self._fleet().version, self.config.max_staleness):
            self._broadcast(step)

    def generator_at(self, step: int) -> None:
        """Validation scores this step's policy: broadcast it even where rollouts may lag."""
        if self._fleet().version != step:
            self._broadcast(step)

    def play(self, specs: list[EpisodeSpec], settings: SamplingSettings, step: int) -> list[Episode]:
        """Play the episodes on the rollout workers."""
        return self._fleet().play(specs, settings, step)

    def respond(self, prefixes: list[Prefix], settings: SamplingSettings, step: int) -> list[Sample]:
        """Scheme (a)'s responses, generated and scored on the rollout workers."""
        return self._fleet().respond(prefixes, settings, step)

    def recompute_old_logprobs(self, samples: list[Sample]) -> None:
        """Learner rank 0 scores the batch (every rank holds the same weights)."""
        import ray

        if self._sharded:  # every sharded rank takes part in each forward pass
            scored = self._on_every_rank("recompute_old_logprobs", samples)
        else:
            scored = ray.get(self.learners[0].recompute_old_logprobs.remote(samples))
        for sample, done in zip(samples, scored):
            sample.logprobs, sample.rollout_logprobs = done.logprobs, done.rollout_logprobs

    def set_learning_rate(self, lr: float) -> None:
        """Every learner rank takes this step's learning rate."""
        import ray

        ray.get([learner.set_learning_rate.remote(lr) for learner in self.learners])

    def optimizer_step(self, mini: list[Sample]) -> dict[str, float]:
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

    def extra_metrics(self) -> dict[str, Any]:
        """The fleet's staleness, weight version, restarts, re-runs and broadcast and request times."""
        fleet = self._fleet()
        counters = fleet.counters
        return {
            "rollout_staleness": fleet.take_staleness(),
            "weight_version": fleet.version,
            "worker_restarts": counters.restarts,
            "rerun_items": counters.rerun_items,
            "broadcast_s": round(counters.broadcast_s, 3),
            **fleet.take_overhead(),
        }

    def save_checkpoint(self, step: int, data_state: dict[str, Any]) -> Path:
        """Learner rank 0 writes the weights, optimiser and torch RNG with the trainer's state."""
        import ray

        if self._sharded:
            return Path(self._on_every_rank("save_checkpoint", step, data_state))
        return Path(ray.get(self.learners[0].save_checkpoint.remote(step, data_state)))

    def load_checkpoint(self) -> dict[str, Any] | None:
        """Every rank loads the newest checkpoint; rank 0's trainer state."""
        import ray

        return ray.get([learner.load_checkpoint.remote() for learner in self.learners])[0]

    def save_model(self, folder: Path) -> None:
        """Learner rank 0 writes the policy (sharded: every rank takes part in the gather)."""
        import ray

        if self._sharded:
            self._on_every_rank("save_model", str(folder))
            return
        ray.get(self.learners[0].save_model.remote(str(folder)))

    def close(self) -> None:
        """End the workers and learners; shut Ray down when this backend started it."""
        import ray

        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None
        end_actors(self.learners)
        self.learners = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
