"""Stage 5b, validation: the reference solution runs in the sandbox and must earn every answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftrl_gym.errors import TaskFormatError
from ftrl_gym.reward import turn_reward, verify_answer
from ftrl_gym.sandbox import Sandbox, ToolCall, ToolResult
from ftrl_gym.tasks import TaskRecord

REJECTION_REASONS: dict[str, str] = {
    "malformed_record": "the record does not pass TaskRecord validation",
    "no_solution": "the record has no reference solution",
    "solution_size_mismatch": "the solution makes a different number of calls than there are answers",
    "solution_call_failed": "a solution call raised, timed out or returned an error",
    "wrong_answer": "a solution call's result does not contain the answer it should produce",
    "unmatched_answer": "a solution call earned no answer under its own tool name (reward emulation)",
    "answers_left": "answers remain unsolved after the whole solution",
    "distractor_failed": "a distractor tool fails on plausible input",
    "distractor_yields_answer": "a distractor tool returns one of the expected answers",
}
"""Every reason a candidate can be rejected for, with what it means."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of validating one candidate."""

    ok: bool
    reason: str | None = None
    detail: str = ""

    @classmethod
    def reject(cls, reason: str, detail: str = "") -> Verdict:
        """Return a rejection for a known reason."""
        if reason not in REJECTION_REASONS:
            raise KeyError(f"unknown rejection reason {reason!r}")
        return cls(False, reason, detail)


def _failure(result: ToolResult) -> bool:
    """Whether a result is an error: raised, or an error the tool returned as text or as an object."""
    if not result.ok:
        return True
    value = result.value
    return (isinstance(value, dict) and "error" in value) or result.text.startswith("Error")


def validate(
    record: dict[str, Any],
    sandbox: Sandbox,
    intended: Sequence[Sequence[str]] | None = None,
    probes: Sequence[dict[str, Any]] = (),
) -> Verdict:
    """Run a candidate's reference solution and distractor probes in the sandbox.

    The solution's calls are scored by the real reward function (:func:`ftrl_gym.reward.turn_reward`)
    turn by turn: every call must earn one answer under its own tool name, and the answers must be
    exhausted at the end, so the oracle scores Solve-F1 = 1.

    Args:
        record: The SPEC 2 record (structured fields as objects or JSON strings).
        sandbox: Where the tool code runs.
        intended: Per turn, per call, the answer that call should produce (checked when given).
        probes: Distractor calls ``{"name", "arguments"}``; each must succeed and produce no answer.

    Returns:
        ``Verdict(ok=True)``, or a rejection with a reason from :data:`REJECTION_REASONS`.
    """
    try:
        task = TaskRecord.from_dict(record, "candidate")
    except TaskFormatError as exc:
        return Verdict.reject("malformed_record", str(exc))
    if not task.solution:
        return Verdict.reject("no_solution")
    calls = sum(len(turn) for turn in task.solution)
    if calls != task.total_answers:
        return Verdict.reject(
            "solution_size_mismatch", f"{calls} calls for {task.total_answers} answers"
        )
    session = sandbox.open_session(task.codes)
    try:
        verdict = _play_solution(task, session, intended)
        return verdict if not verdict.ok else _check_probes(task, session, probes)
    finally:
        session.close()


def _play_solution(
    task: TaskRecord, session: Any, intended: Sequence[Sequence[str]] | None
) -> Verdict:
    """Play the solution turn by turn, scoring each with the reward function."""
    left = {name: list(answers) for name, answers in task.unsolved_set.items()}
    for t, turn in enumerate(task.solution or []):
        results = session.call([ToolCall(c["name"], c["arguments"]) for c in turn])
        for c, (call, result) in enumerate(zip(turn, results)):
            if _failure(result):
                return Verdict.reject(
                    "solution_call_failed", f"{call['name']}: {result.error or result.text}"
                )
            if intended is not None and not verify_answer(result.text, intended[t][c]):
                return Verdict.reject(
                    "wrong_answer",
                    f"{call['name']} gave {result.text[:200]!r}, expected {intended[t][c]!r}",
                )
        scored = turn_reward("", [(c["name"], r.text) for c, r in zip(turn, results)], left)
        if scored.num_solved != len(turn):
            return Verdict.reject(
                "unmatched_answer",
                f"turn {t}: {scored.num_solved} of {len(turn)} calls earned an answer",
            )
        left = scored.unsolved_after
    if any(left.values()):
        return Verdict.reject("answers_left", repr(left))
    return Verdict(True)


def _check_probes(task: TaskRecord, session: Any, probes: Sequence[dict[str, Any]]) -> Verdict:
    """Call every distractor; each must work and must not produce any expected answer."""
    if not probes:
        return Verdict(True)
    results = session.call([ToolCall(p["name"], p["arguments"]) for p in probes])
    answers = [a for answers in task.unsolved_set.values() for a in answers]
    for probe, result in zip(probes, results):
        if _failure(result):
            return Verdict.reject(
                "distractor_failed", f"{probe['name']}: {result.error or result.text}"
            )
        hit = next((a for a in answers if verify_answer(result.text, a)), None)
        if hit is not None:
            return Verdict.reject("distractor_yields_answer", f"{probe['name']} returned {hit!r}")
    return Verdict(True)
