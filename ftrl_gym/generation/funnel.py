"""The per-stage funnel of a run: candidates in, passed, and rejected by reason with examples of the detail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LLM_STAGES: tuple[str, ...] = (
    "scene",
    "documents",
    "integration",
    "scaling",
    "deployment",
    "validation",
)
"""The stages a candidate of the LLM backend passes through, in order (validation runs in the sandbox)."""


@dataclass
class StageCount:
    """One stage of one scenario: how many candidates came in and what became of them."""

    entered: int = 0
    passed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"in", "passed", "rejected": {reason: {"count", "examples"}}}``."""
        return {
            "in": self.entered,
            "passed": self.passed,
            "rejected": {
                reason: {"count": count, "examples": self.examples[reason]}
                for reason, count in sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0]))
            },
        }


class Funnel:
    """Counts, per scenario and stage, the candidates that entered, passed and were rejected.

    A candidate enters the first stage and every stage up to the one that rejected it (or all of
    them, and is then accepted). Up to ``examples`` distinct details are kept per reason.
    """

    def __init__(self, stages: Sequence[str] = LLM_STAGES, examples: int = 3) -> None:
        self.stages = tuple(stages)
        self.examples = examples
        self.counts: dict[str, dict[str, StageCount]] = {}

    def accept(self, scenario: str) -> None:
        """Count a candidate that passed every stage."""
        for stage in self.stages:
            self._count(scenario, stage).passed += 1

    def reject(self, scenario: str, stage: str, reason: str, detail: str) -> None:
        """Count a candidate that passed the stages before ``stage`` and was rejected there."""
        if stage not in self.stages:
            raise KeyError(f"unknown stage {stage!r}; the funnel's stages are {self.stages}")
        for before in self.stages[: self.stages.index(stage)]:
            self._count(scenario, before).passed += 1
        count = self._count(scenario, stage)
        count.rejected[reason] = count.rejected.get(reason, 0) + 1
        kept = count.examples.setdefault(reason, [])
        if len(kept) < self.examples and detail not in kept:
            kept.append(detail)

    def _count(self, scenario: str, stage: str) -> StageCount:
        count = self.counts.setdefault(scenario, {s: StageCount() for s in self.stages})[stage]
        count.entered += 1
        return count

    def accepted(self, scenario: str) -> int:
        """Candidates of ``scenario`` that passed the last stage."""
        return self.counts[scenario][self.stages[-1]].passed if scenario in self.counts else 0

    def candidates(self, scenario: str) -> int:
        """Candidates of ``scenario`` counted so far (those that entered the first stage)."""
        return self.counts[scenario][self.stages[0]].entered if scenario in self.counts else 0

    def total(self) -> dict[str, StageCount]:
        """Every scenario's counts added up, stage by stage."""
        out = {stage: StageCount() for stage in self.stages}
        for stages in self.counts.values():
            for stage, count in stages.items():
                merged = out[stage]
                merged.entered += count.entered
                merged.passed += count.passed
                for reason, n in count.rejected.items():
                    merged.rejected[reason] = merged.rejected.get(reason, 0) + n
                    kept = merged.examples.setdefault(reason, [])
                    kept.extend(e for e in count.examples[reason] if e not in kept)
                    del kept[self.examples :]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return the funnel as JSON-ready data: every scenario's stages, and their total."""
        return {
            "stages": list(self.stages),
            "scenarios": {
                scenario: {stage: count.to_dict() for stage, count in stages.items()}
                for scenario, stages in self.counts.items()
            },
            "total": {stage: count.to_dict() for stage, count in self.total().items()},
        }

    def one_line(self, scenario: str | None = None) -> str:
        """The funnel of one scenario (or the total) on one line: ``scene 4→3 (not_json 1), ...``."""
        stages = self.total() if scenario is None else self.counts.get(scenario, {})
        parts = []
        for stage, count in stages.items():
            if count.entered == 0:
                break
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(count.rejected.items()))
            parts.append(
                f"{stage} {count.entered}→{count.passed}" + (f" ({reasons})" if reasons else "")
            )
        return ", ".join(parts) or "no candidate was built"

    def render(self) -> str:
        """Return the total funnel as a text table, then one example of each rejection reason."""
        total = self.total()
        lines = [f"{'stage':<12}{'in':>6}{'passed':>8}  rejected"]
        for stage, count in total.items():
            reasons = ", ".join(
                f"{r}: {n}"
                for r, n in sorted(count.rejected.items(), key=lambda kv: (-kv[1], kv[0]))
            )
            lines.append(f"{stage:<12}{count.entered:>6}{count.passed:>8}  {reasons or '-'}")
        accepted = ", ".join(f"{s}: {self.accepted(s)}" for s in self.counts) or "-"
        lines.append(f"accepted per scenario: {accepted}")
        examples = [
            f"  {stage} {reason}: {kept[0][:160]}"
            for stage, count in total.items()
            for reason, kept in count.examples.items()
            if kept
        ]
        return "\n".join(lines + (["examples:"] + examples if examples else []))
