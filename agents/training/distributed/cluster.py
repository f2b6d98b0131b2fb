"""Joining or starting a Ray cluster, and the resources (placement) of each kind of actor."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ftrl_gym.agents.training.config import TrainConfig

ACTOR_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    **{k: os.environ[k] for k in ("HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE") if k in os.environ},
}
"""Set in every actor before it loads a model: in-process vLLM engines, and the driver's own Hub
settings (offline mode, cache folder), so a Hub id resolves in an actor as it does in the driver."""


class ClusterError(RuntimeError):
    """The Ray cluster cannot host the configured actors; the message says what to change."""


@dataclass(frozen=True)
class Placement:
    """Ray resources of one actor."""

    num_cpus: float
    num_gpus: float

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``ActorClass.options``: the resources, and ``ACTOR_ENV`` set in the
        actor's process before it imports anything."""
        return {
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "runtime_env": {"env_vars": dict(ACTOR_ENV)},
        }


def rollout_placement(config: TrainConfig) -> Placement:
    """Resources of one rollout worker (a vLLM engine with tensor parallelism holds that many GPUs)."""
    return Placement(config.rollout_worker_cpus, config.rollout_worker_gpus)


def learner_placement(config: TrainConfig) -> Placement:
    """Resources of one learner rank."""
    return Placement(config.learner_cpus, config.learner_gpus)


def required_resources(config: TrainConfig) -> dict[str, float]:
    """Total CPUs and GPUs the actors of a run reserve."""
    workers, learners = config.num_rollout_workers, config.num_learners
    return {
        "CPU": workers * config.rollout_worker_cpus + learners * config.learner_cpus,
        "GPU": workers * config.rollout_worker_gpus + learners * config.learner_gpus,
    }


def connect(config: TrainConfig) -> bool:
    """Join ``config.ray_address``, or start a local Ray instance when it is empty.

    A local instance gets at least as many logical CPUs as the actors reserve (they then share the
    physical cores), never a dashboard, and no usage reporting. An already connected process is
    left as it is.

    Returns:
        True when this call started the connection (the caller then shuts it down).

    Raises:
        ClusterError: The cluster has fewer CPUs or GPUs than the actors reserve.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = False
    if not ray.is_initialized():
        if config.ray_address:
            ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False)
        else:
            needed = required_resources(config)["CPU"]
            cpus = max(os.cpu_count() or 1, int(needed + 0.999))
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        started = True
    check_resources(config, ray.cluster_resources())
    return started


def check_resources(config: TrainConfig, available: dict[str, float]) -> None:
    """Fail early, with the fix, when the actors cannot all be placed (Ray would wait forever).

    Raises:
        ClusterError: A resource falls short.
    """
    for name, needed in required_resources(config).items():
        have = float(available.get(name, 0.0))
        if needed > have + 1e-9:
            raise ClusterError(
                f"the actors reserve {needed:g} {name} but the Ray cluster has {have:g}: lower "
                "num_rollout_workers / num_learners or rollout_worker_cpus / learner_cpus "
                "(/ _gpus), or add nodes to the cluster"
            )


def end_actors(actors: list[Any]) -> None:
    """Call each actor's ``close()`` (30 s at most; a dead actor is skipped), then kill it."""
    import ray

    for actor in actors:
        try:
            ray.get(actor.close.remote(), timeout=30)
        except (ray.exceptions.RayError, TimeoutError):
            pass  # dead or hung: the kill below ends it either way
        ray.kill(actor)
