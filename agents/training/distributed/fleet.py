"""The rollout fleet: workers placed by resources, requests split over them, dead workers restarted and their requests run again."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ftrl_gym.agents.training.config import TrainConfig
from ftrl_gym.agents.training.distributed.cluster import end_actors, rollout_placement
from ftrl_gym.agents.training.distributed.rollout_worker import RolloutWorker
from ftrl_gym.agents.training.distributed.versions import UNLOADED, Tagged, staleness
from ftrl_gym.agents.training.distributed.weight_group import GroupCoordinator, group_backend
from ftrl_gym.agents.training.generation import SamplingSettings

RESTART_WAIT_S = 300
"""Longest wait for Ray to restart a dead rollout worker (a vLLM engine takes a while to start)."""


class WorkerLostError(RuntimeError):
    """A rollout worker died more often than ``max_worker_restarts`` allows."""


@dataclass
class FleetCounters:
    """What the fleet has done, for the metrics log.

    Attributes:
        restarts: Rollout workers that died and were restarted.
        rerun_items: Episodes or prefixes run again because their worker died mid-request.
        max_staleness: Largest staleness (steps) of the rollouts since the last ``take_staleness``.
        broadcasts: Weight broadcasts sent.
        broadcast_s: Seconds spent in the latest broadcast.
        requests: ``(latency_s, busy_s, generate_s)`` of each accepted request: seen by the driver
            (submit to result), inside the worker, inside its generator.
    """

    restarts: int = 0
    rerun_items: int = 0
    max_staleness: int = 0
    broadcasts: int = 0
    broadcast_s: float = 0.0
    requests: list[tuple[float, float, float]] = field(default_factory=list)


@dataclass
class _Request:
    worker: int
    chunk: int
    items: list[Any]
    submitted: float = field(default_factory=time.perf_counter)


class RolloutFleet:
    """``num_rollout_workers`` rollout actors and the requests they run.

    Each worker is a Ray actor with ``max_restarts`` (Ray restarts a dead one) and no task retries:
    the fleet itself re-sends the current weights to a restarted worker and then the whole request
    it lost. With ``weight_sync=collective`` the weights go from learner rank 0 through a
    ``torch.distributed`` group of rank 0 and the workers instead, and a restart forms that group
    again (new port) for every member before the weights are re-sent. A request's result is
    accepted once, when it returns; a dead worker's partial work never reaches the driver, so
    nothing is counted twice, and because sampling is seeded per request the re-run equals what
    the lost run would have returned.

    Args:
        config: The run's settings.
        learner: Learner rank 0's actor handle (the sender of ``weight_sync=collective``).
    """

    def __init__(self, config: TrainConfig, learner: Any = None) -> None:
        import ray

        self.config = config
        actor = ray.remote(RolloutWorker).options(
            **rollout_placement(config).options(),
            max_restarts=config.max_worker_restarts,
            max_task_retries=0,
            max_concurrency=2,  # ``status`` answers while a request runs
        )
        payload = config.to_dict()
        self.workers = [actor.remote(payload, i) for i in range(config.num_rollout_workers)]
        self.version = UNLOADED
        self._latest = UNLOADED  # the learner's version: what a collective re-send is tagged
        self._weights: Any = None
        self.counters = FleetCounters()
        ray.get([w.status.remote() for w in self.workers])
        self.group: GroupCoordinator | None = None
        if config.weight_sync == "collective":
            backend = group_backend(config.device, config.rollout_worker_gpus)
            self.group = GroupCoordinator(learner, backend)

    def broadcast(self, weights: Any, version: int) -> None:
        """Send the weights tagged ``version``; a worker that died meanwhile is restarted with them.

        Args:
            weights: An object ref of a learner's ``weights()``, read by every worker from the
                object store (ignored by ``weight_sync=collective``: rank 0 sends its own).
            version: The learner step the weights come from.
        """
        started = time.perf_counter()
        if self.group is not None:
            self._send_collective(version)
        else:
            self._send_object(weights, version)
        self.counters.broadcasts += 1
        self.counters.broadcast_s = time.perf_counter() - started

    def _send_object(self, weights: Any, version: int) -> None:
        import ray

        self._weights = weights
        self.version = self._latest = version
        pending = {w.load_weights.remote(weights, version): i for i, w in enumerate(self.workers)}
        for ref, index in pending.items():
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                self._recover(index)

    def _send_collective(self, version: int, reform: bool = False) -> None:
        """Rank 0 broadcasts to the group (formed first if needed); a member lost on the way is
        waited for, the group formed again and the broadcast repeated."""
        assert self.group is not None
        for _ in range(self.config.max_worker_restarts + 2):
            if reform or not self.group.formed:
                self.group.formed = self._settle(self.group.form(self.workers))
            if self.group.formed and self._settle(self.group.send(self.workers, version)):
                self.version = self._latest = version
                return
            reform = True
        raise WorkerLostError(
            f"the weight group of {len(self.workers)} rollout workers kept losing members"
        )

    def _settle(self, refs: list[Any]) -> bool:
        """Wait for a group call on every member (learner first, then the workers); a worker that
        died is counted and waited for. Returns whether every member succeeded."""
        import ray

        ok = True
        for member, ref in enumerate(refs):
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                if member == 0:
                    raise
                self.counters.restarts += 1
                self._until_back(member - 1, "status")
                ok = False
            except ray.exceptions.RayError:
                ok = False  # a live member whose peer vanished mid-call
        return ok

    def play(self, specs: Sequence[Any], settings: SamplingSettings, learner_version: int) -> list:
        """Episodes of ``specs`` (``RolloutWorker.play``), in order, however the workers fared."""
        return self._run("play", list(specs), settings, learner_version)

    def respond(
        self, prefixes: Sequence[Any], settings: SamplingSettings, learner_version: int
    ) -> list:
        """Scheme (a) samples for ``prefixes`` (``RolloutWorker.respond``), in order."""
        return self._run("respond", list(prefixes), settings, learner_version)

    def _run(
        self, method: str, items: list[Any], settings: SamplingSettings, learner_version: int
    ) -> list:
        """Split ``items`` into one contiguous chunk per worker, run them, re-run lost chunks."""
        import ray

        self._latest = max(self._latest, learner_version)
        size = -(-len(items) // len(self.workers)) if items else 1
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        results: dict[int, list[Any]] = {}
        pending = {
            self._submit(method, i, chunk, settings): _Request(i, i, chunk)
            for i, chunk in enumerate(chunks)
        }
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            request = pending.pop(ready[0])
            try:
                tagged: Tagged[Any] = ray.get(ready[0])
            except ray.exceptions.RayActorError:
                self.counters.rerun_items += len(request.items)
                self._recover(request.worker)
                ref = self._submit(method, request.worker, request.items, settings)
                pending[ref] = _Request(request.worker, request.chunk, request.items)
                continue
            lag = staleness(learner_version, tagged.version)
            if lag > self.config.max_staleness:
                self.counters.rerun_items += len(request.items)
                self._reload(request.worker)
                ref = self._submit(method, request.worker, request.items, settings)
                pending[ref] = _Request(request.worker, request.chunk, request.items)
                continue
            self.counters.max_staleness = max(self.counters.max_staleness, lag)
            latency = time.perf_counter() - request.submitted
            self.counters.requests.append((latency, tagged.busy_s, tagged.generate_s))
            results[request.chunk] = tagged.items
        return [item for chunk in sorted(results) for item in results[chunk]]

    def _submit(self, method: str, worker: int, items: list[Any], settings: SamplingSettings):
        return getattr(self.workers[worker], method).remote(items, settings)

    def _recover(self, index: int) -> None:
        """A worker died: count the restart (Ray restarts the actor) and give it the weights again
        (collective: once it is back, form the group again for all members and re-send)."""
        self.counters.restarts += 1
        if self.group is None:
            self._reload(index)
        elif self._latest != UNLOADED:
            self._until_back(index, "status")
            self._send_collective(self._latest, reform=True)

    def _reload(self, index: int) -> None:
        """Give worker ``index`` the current weights, waiting while Ray restarts it (collective:
        the learner's current weights go to every worker)."""
        if self.group is not None:
            if self._latest != UNLOADED:
                self._send_collective(self._latest)
        elif self._weights is not None:
            self._until_back(index, "load_weights", self._weights, self.version)

    def _until_back(self, index: int, method: str, *args: Any) -> Any:
        """Call ``method`` on worker ``index``, retrying while Ray restarts it."""
        import ray

        deadline = time.monotonic() + RESTART_WAIT_S
        while True:
            try:
                return ray.get(getattr(self.workers[index], method).remote(*args))
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise WorkerLostError(
                        f"rollout worker {index} did not come back within {RESTART_WAIT_S} s"
                    ) from None
                time.sleep(0.1)
            except ray.exceptions.RayActorError as exc:
                raise WorkerLostError(
                    f"rollout worker {index} is gone after {self.config.max_worker_restarts} "
                    f"restarts (max_worker_restarts): {exc}"
                ) from exc

    def statuses(self) -> list[dict[str, Any]]:
        """Each worker's ``status()`` (pid, weight version, requests running)."""
        import ray

        return ray.get([w.status.remote() for w in self.workers])

    def take_overhead(self) -> dict[str, float]:
        """Generator seconds and ``(request - generator) / generator`` time since the last call."""
        requests, self.counters.requests = self.counters.requests, []
        generate = sum(r[2] for r in requests)
        latency = sum(r[0] for r in requests)
        return {
            "rollout_generate_s": round(generate, 3),
            "rollout_overhead": (latency - generate) / generate if generate else 0.0,
        }

    def take_staleness(self) -> int:
        """The largest rollout staleness since the last call, then reset it."""
        value, self.counters.max_staleness = self.counters.max_staleness, 0
        return value

    def close(self) -> None:
        """Close and end every worker."""
        end_actors(self.workers)
