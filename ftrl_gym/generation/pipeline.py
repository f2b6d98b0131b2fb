"""The five-stage construction pipeline end to end: candidates, validation, records and a summary."""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from ftrl_gym.errors import GenerationError
from ftrl_gym.generation.deployment import Candidate, deploy
from ftrl_gym.generation.documents import generate_documents
from ftrl_gym.generation.integration import integrate
from ftrl_gym.generation.scaling import ScalingConfig, scale
from ftrl_gym.generation.scenes import SCENARIOS, decompose
from ftrl_gym.generation.validation import Verdict, validate
from ftrl_gym.generation.world import World, build_world
from ftrl_gym.sandbox import Sandbox, SandboxConfig
from ftrl_gym.tasks import TaskRecord


@dataclass
class GenerationConfig:
    """What to generate and how (the offline backend)."""

    scenarios: Sequence[str] = SCENARIOS
    """Scenarios to generate, each to ``n`` tasks."""
    n: int = 100
    """Accepted tasks per scenario."""
    seed: int = 0
    """Master seed; the world and every candidate derive their own generator from it."""
    split: str = "train"
    """``train`` or ``test``; each split has its own world, so no fact is shared between them."""
    merge_rate: float = 0.8
    """Stage 3: probability of merging different ops of one family into one broad tool."""
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    """Stage 4 rates."""
    explicit_rate: float = 0.3
    """Probability that a solution call spells out an optional parameter at its default."""
    max_attempts_factor: int = 4
    """Give up on a scenario after ``n * max_attempts_factor + 20`` candidates."""

    def __post_init__(self) -> None:
        unknown = [s for s in self.scenarios if s not in SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        if not 0.0 <= self.merge_rate <= 1.0:
            raise ValueError(f"merge_rate must be a probability in [0, 1], got {self.merge_rate}")

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-ready dict."""
        return asdict(self) | {"scenarios": list(self.scenarios)}


def build_candidate(
    scenario: str, world: World, rng: random.Random, config: GenerationConfig
) -> Candidate:
    """Run stages 1–5a for one candidate with its own generator."""
    return trace_candidate(scenario, world, rng, config)["deployment"]


def trace_candidate(
    scenario: str, world: World, rng: random.Random, config: GenerationConfig
) -> dict[str, Any]:
    """Run stages 1–5a for one candidate and keep every stage's output.

    Returns:
        ``scene``, ``documents``, ``integration``, ``scaling`` and ``deployment`` outputs, each with
        a ``to_dict()`` for inspection.
    """
    scene = decompose(scenario, world, rng)
    documents = generate_documents(scene, rng)
    merged = integrate(scene, documents, rng, config.merge_rate)
    scaled = scale(scene, merged, rng, config.scaling)
    deployed = deploy(scene, scaled, world, rng, config.split, config.explicit_rate)
    return {
        "scene": scene,
        "documents": documents,
        "integration": merged,
        "scaling": scaled,
        "deployment": deployed,
    }


def inspect_candidate(
    config: GenerationConfig, scenario: str, index: int, sandbox: Sandbox
) -> dict[str, Any]:
    """Every stage's output for candidate ``index`` of a run, and its validation verdict, as JSON-ready data."""
    world = build_world(f"{config.seed}:{config.split}")
    stages = trace_candidate(scenario, world, candidate_rng(config, scenario, index), config)
    candidate = stages["deployment"]
    verdict = validate(candidate.record, sandbox, candidate.intended, candidate.probes)
    return {name: out.to_dict() for name, out in stages.items()} | {"validation": asdict(verdict)}


@dataclass
class Summary:
    """What a run produced: counts, rejections and diversity figures."""

    accepted: Counter[Any] = field(default_factory=Counter)
    rejected: Counter[Any] = field(default_factory=Counter)
    tools_per_task: Counter[Any] = field(default_factory=Counter)
    hops: Counter[Any] = field(default_factory=Counter)
    distractors: Counter[Any] = field(default_factory=Counter)
    tool_names: set[str] = field(default_factory=set)
    templates: set[str] = field(default_factory=set)
    domains: Counter[Any] = field(default_factory=Counter)

    def add(self, scenario: str, record: TaskRecord, meta: dict[str, Any]) -> None:
        """Count one accepted task; ``meta`` holds its tools, hops, distractors, template, domains."""
        self.accepted[scenario] += 1
        self.tools_per_task[meta["tools"]] += 1
        self.hops[meta["hops"]] += 1
        self.distractors[meta["distractors"]] += 1
        self.tool_names.update(record.tool_names)
        self.templates.add(meta["template"])
        self.domains.update(meta["domains"])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (counters keyed by strings, sets as sizes)."""

        def plain(counter: Counter[Any]) -> dict[str, int]:
            return {str(k): counter[k] for k in sorted(counter)}

        return {
            "accepted": plain(self.accepted),
            "rejected": plain(self.rejected),
            "tools_per_task": plain(self.tools_per_task),
            "hops": plain(self.hops),
            "distractors": plain(self.distractors),
            "distinct_tool_names": len(self.tool_names),
            "distinct_templates": len(self.templates),
            "domains": plain(self.domains),
        }

    def render(self) -> str:
        """Return the summary as an aligned text table."""
        rows = [
            (
                key,
                value
                if isinstance(value, int)
                else ", ".join(f"{k}: {v}" for k, v in value.items()) or "-",
            )
            for key, value in self.to_dict().items()
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def candidate_rng(config: GenerationConfig, scenario: str, index: int) -> random.Random:
    """The private generator of one candidate: a pure function of seed, split, scenario and index."""
    return random.Random(f"{config.seed}:{config.split}:{scenario}:{index}")


VALIDATION_THREADS = 4
"""Candidates validated at once: each validation runs in its own sandbox process, so a few in flight hide
the round trips and the per-episode fork; results are still taken in candidate order."""


def iter_scenario(
    scenario: str, world: World, config: GenerationConfig, sandbox: Sandbox, summary: Summary
) -> Iterator[TaskRecord]:
    """Yield ``config.n`` validated records of one scenario, counting rejections in ``summary``.

    Candidates are built in order and validated a few at a time ahead of need; their verdicts are
    consumed in order and the run stops at the ``n``-th acceptance, so the records and the counts are
    those of a one-at-a-time run (validations started past that point are discarded).
    """
    accepted, limit = 0, config.n * config.max_attempts_factor + 20
    pending: deque[tuple[int, Candidate, Future[Verdict]]] = deque()
    with ThreadPoolExecutor(VALIDATION_THREADS, thread_name_prefix="ftrl-validate") as pool:
        next_index = 0
        while accepted < config.n:
            while len(pending) < 2 * VALIDATION_THREADS and next_index < limit:
                candidate = build_candidate(scenario, world, candidate_rng(config, scenario, next_index), config)
                future = pool.submit(validate, candidate.record, sandbox, candidate.intended, candidate.probes)
                pending.append((next_index, candidate, future))
                next_index += 1
            if not pending:
                break
            index, candidate, future = pending.popleft()
            verdict = future.result()
            if not verdict.ok:
                summary.rejected[verdict.reason] += 1
                continue
            accepted += 1
            record = TaskRecord.from_dict(
                candidate.record | {"meta": candidate.meta}, f"{scenario}[{index}]"
            )
            summary.add(scenario, record, candidate.meta)
            yield record
        for _index, _candidate, future in pending:
            future.cancel()
    if accepted < config.n:
        raise GenerationError(
            f"only {accepted} of {config.n} {scenario} candidates passed validation "
            f"in {limit} attempts; rejections: {dict(summary.rejected)}"
        )


def generate(
    config: GenerationConfig,
    sandbox: Sandbox | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, list[TaskRecord]], Summary]:
    """Run the offline backend: same config → the very same records, in the same order.

    Args:
        config: What to generate.
        sandbox: Where validation runs; a private one is opened (and closed) when None.
        progress: Called with 1 for every accepted task (a progress bar's ``update``).

    Returns:
        Records per scenario, and the run's summary.
    """
    world = build_world(f"{config.seed}:{config.split}")
    summary = Summary()
    out: dict[str, list[TaskRecord]] = {}
    with validation_sandbox(sandbox) as box:
        for scenario in config.scenarios:
            out[scenario] = []
            for record in iter_scenario(scenario, world, config, box, summary):
                out[scenario].append(record)
                if progress is not None:
                    progress(1)
    return out, summary


@contextmanager
def validation_sandbox(sandbox: Sandbox | None) -> Iterator[Sandbox]:
    """Use the caller's sandbox, or open a private one for the run and close it afterwards."""
    if sandbox is not None:
        yield sandbox
        return
    with Sandbox(SandboxConfig(timeout_s=10.0)) as private:
        yield private
