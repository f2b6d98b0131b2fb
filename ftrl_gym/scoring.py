"""Per-task call scorers: a task may be scored by matching its calls against acceptable values."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Call = tuple[str, Mapping[str, Any]]
"""One parsed call as a scorer sees it: ``(tool name, arguments)``."""

OPTIONAL = ""
"""In an acceptable-values list, this marks an argument that may be left out."""


class ScorerSpecError(ValueError):
    """A task's ``scorer`` spec is malformed; the message names the field and what was expected."""


@dataclass(frozen=True)
class CallVerdict:
    """How a scorer judged one turn's calls."""

    accepted: bool
    """Whether the calls, taken together, are a correct answer to the task."""
    matched: int
    """Calls that each match a distinct expected call (at most ``expected - 1`` unless accepted)."""
    detail: str
    """One line: why the calls were accepted or refused."""


class CallScorer(Protocol):
    """What the env asks of a scorer: the expected call count, and a verdict on a turn's calls."""

    @property
    def expected_calls(self) -> int:
        """T of the episode metrics: the calls a correct answer makes (0 when it should make none)."""
        ...

    def score(self, calls: Sequence[Call]) -> CallVerdict:
        """Judge a turn's calls; never raises on anything the agent sent."""
        ...


class EpisodeJudge(Protocol):
    """One episode's judge of a :class:`TurnScorer`: it sets the agent's session up and judges each
    user turn when the agent stops calling."""

    def setup(self, session: Any) -> None:
        """Prepare the agent's sandbox session before its first call (e.g. load the scenario).

        Raises:
            SandboxError: the session cannot be prepared (an infrastructure or task defect).
        """
        ...

    def judge(self, user_turn: int, session: Any, turn_calls: int, results: Sequence[str]) -> CallVerdict:
        """Judge user turn ``user_turn`` (0: the opening messages) once the agent stops calling.

        Args:
            user_turn: The user turn that just ended.
            session: The agent's sandbox session (the judge may call its hidden probe functions).
            turn_calls: Calls the agent made during this user turn.
            results: The text of every result the agent received so far, in all user turns.

        Returns:
            The verdict; ``matched`` is at most ``min(turn_calls, expected_at(user_turn))``.
        """
        ...

    def close(self) -> None:
        """Release what the judge opened (idempotent)."""
        ...


class TurnScorer(Protocol):
    """A scorer that judges each *user turn* by the world state it leaves (BFCL's multi-turn check),
    with a toolset of its own: tool name → hidden entry point, and the code of every entry point,
    including functions no agent can call (a scenario loader, a state probe)."""

    per_user_turn: bool
    """Always True: marks a turn scorer (a :class:`CallScorer` judges each assistant turn)."""

    @property
    def expected_calls(self) -> int:
        """T of the episode metrics: the gold calls of all user turns."""
        ...

    def expected_at(self, user_turn: int) -> int:
        """The gold calls of one user turn (0: a turn the agent should not act on)."""
        ...

    def entry_points(self) -> dict[str, str]:
        """Tool name → the function of the session's code that runs it."""
        ...

    def session_codes(self) -> dict[str, str]:
        """Function name → source, for every function the agent's session holds (tools and hidden ones)."""
        ...

    def start(self, sandbox: Any, seed: int | None) -> EpisodeJudge:
        """A judge for one episode; it may open sessions of its own on ``sandbox``."""
        ...


ScorerFactory = Callable[[Mapping[str, Any]], CallScorer | TurnScorer]
"""Builds a scorer from a task's ``scorer`` spec, raising :class:`ScorerSpecError` when it is malformed."""

_SCORERS: dict[str, ScorerFactory | str] = {
    "call_match": "ftrl_gym.scoring:CallMatchScorer.from_spec",
    "bfcl_ast": "ftrl_gym.bfcl.scorer:BfclAstScorer.from_spec",
    "bfcl_multi_turn": "ftrl_gym.bfcl.multi_turn:BfclMultiTurnScorer.from_spec",
}
"""Scorer kinds: a factory, or ``module:attribute`` imported on first use."""


def register_scorer(kind: str, factory: ScorerFactory) -> None:
    """Make a scorer kind available to task records (``"scorer": {"kind": kind, ...}``).

    Args:
        kind: The name task records use.
        factory: Builds the scorer from the record's spec.
    """
    _SCORERS[kind] = factory


def build_scorer(spec: Any) -> CallScorer | TurnScorer:
    """Build the scorer a task record's ``scorer`` field describes.

    Args:
        spec: A JSON object with a ``kind`` (``call_match``, ``bfcl_ast``, ``bfcl_multi_turn`` or a
            registered kind).

    Returns:
        The scorer.

    Raises:
        ScorerSpecError: The spec is not an object, its kind is unknown, or the kind refuses it.
    """
    if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
        raise ScorerSpecError('scorer must be an object with a string "kind", e.g. {"kind": "call_match", ...}')
    factory = _SCORERS.get(spec["kind"])
    if factory is None:
        raise ScorerSpecError(f"unknown scorer kind {spec['kind']!r}; known kinds: {', '.join(sorted(_SCORERS))}")
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        target: Any = importlib.import_module(module)
        for part in attribute.split("."):
            target = getattr(target, part)
        factory = target
    return factory(spec)  # type: ignore[operator]


@dataclass(frozen=True)
class ExpectedCall:
    """One expected call: a tool name and, per parameter, the values accepted for it."""

    name: str
    """The tool the call must name."""
    arguments: dict[str, list[Any]]
    """Parameter → acceptable values; a list holding ``""`` means the argument may be left out."""

    def accepts(self, name: str, arguments: Mapping[str, Any]) -> bool:
        """Whether a call names this tool, passes only known parameters with acceptable values, and
        leaves out only optional ones."""
        if name != self.name:
            return False
        for key, value in arguments.items():
            acceptable = self.arguments.get(key)
            if acceptable is None or not any(values_equal(value, a) for a in acceptable if a != OPTIONAL):
                return False
        return all(key in arguments for key, acceptable in self.arguments.items() if OPTIONAL not in acceptable)


def values_equal(value: Any, expected: Any) -> bool:
    """JSON equality where an int equals the same float, and a bool is never a number.

    Args:
        value: A value the agent sent.
        expected: An acceptable value.

    Returns:
        Whether they are the same JSON value.
    """
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(value, (int, float)) and isinstance(expected, (int, float)):
        return value == expected
    if isinstance(value, list) and isinstance(expected, list):
        return len(value) == len(expected) and all(values_equal(v, e) for v, e in zip(value, expected))
    if isinstance(value, dict) and isinstance(expected, dict):
        return value.keys() == expected.keys() and all(values_equal(value[k], expected[k]) for k in value)
    return type(value) is type(expected) and value == expected


def max_matching(accepts: Sequence[Sequence[bool]]) -> int:
    """Size of a maximum matching between calls (rows) and expected calls (columns).

    Args:
        accepts: ``accepts[i][j]``: whether expected call ``j`` accepts call ``i``.

    Returns:
        How many calls can each be paired with a distinct expected call they match (Kuhn's algorithm).
    """
    owner: dict[int, int] = {}

    def augment(row: int, seen: set[int]) -> bool:
        for column, ok in enumerate(accepts[row]):
            if ok and column not in seen:
                seen.add(column)
                if column not in owner or augment(owner[column], seen):
                    owner[column] = row
                    return True
        return False

    return sum(augment(row, set()) for row in range(len(accepts)))


@dataclass(frozen=True)
class CallMatchScorer:
    """Accepts a turn exactly when each call matches a distinct expected call and none is missing.

    Spec: ``{"kind": "call_match", "calls": [{"name": "f", "arguments": {"x": [1, 1.0], "unit":
    ["cm", ""]}}, ...]}``; an empty ``calls`` list means the task wants no call (abstention).
    """

    calls: tuple[ExpectedCall, ...]
    """The expected calls, in any order."""

    @property
    def expected_calls(self) -> int:
        """Number of expected calls."""
        return len(self.calls)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> CallMatchScorer:
        """Build from a ``call_match`` spec.

        Raises:
            ScorerSpecError: ``calls`` is not a list of ``{"name": str, "arguments": {param: [values]}}``.
        """
        calls = spec.get("calls")
        if not isinstance(calls, list):
            raise ScorerSpecError(f"scorer.calls must be a list of expected calls, got {type(calls).__name__}")
        expected = []
        for i, call in enumerate(calls):
            name = call.get("name") if isinstance(call, dict) else None
            arguments = call.get("arguments") if isinstance(call, dict) else None
            if not isinstance(name, str) or not isinstance(arguments, dict) or not all(
                    isinstance(values, list) and values for values in arguments.values()):
                raise ScorerSpecError(
                    f"scorer.calls[{i}] must be {{\"name\": str, \"arguments\": {{param: [acceptable values, "
                    f"...]}}}} with a non-empty list per parameter, got {json.dumps(call)[:200]}"
                )
            expected.append(ExpectedCall(name, {key: list(values) for key, values in arguments.items()}))
        return cls(tuple(expected))

    def score(self, calls: Sequence[Call]) -> CallVerdict:
        """Match the calls against the expected ones (each expected call used once)."""
        accepts = [[e.accepts(name, args) for e in self.calls] for name, args in calls]
        matched = max_matching(accepts)
        accepted = matched == len(calls) == len(self.calls)
        if accepted:
            return CallVerdict(True, matched, f"all {matched} calls match an expected call")
        return CallVerdict(False, matched, f"{matched} of {len(calls)} calls match one of {len(self.calls)} expected calls")
