"""The Solve-F1 reward of SPEC 3, its ablation variants and the episode metrics, as pure functions."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ftrl_gym.parsing import TOOL_CALL_TAGS, strip_end_markers

EMPTY_RESPONSE_REWARD = -0.5
"""Reward of an empty response (SPEC 3.4)."""
FORMAT_ERROR_REWARD = -0.3
"""Reward of a response with tool-call tags but no call that parsed (SPEC 3.4)."""
ALL_SOLVED_REWARD = 0.5
"""Reward of a call-free turn after every sub-problem is solved, without the final answer."""
ABSTENTION_REWARD = 1.0
"""Default reward of a correct abstention: a well-formed call-free turn on a task whose scorer expects
no call (an irrelevance task). SPEC 3 alone would give it 0, the same as a wrong call."""

REWARD_VARIANTS: dict[str, Callable[[int, int], float]] = {
    "solve_f1": lambda p, q: 2 * q / (p + 1),
    "solve_p": lambda p, q: q / p,
    "solve_r": lambda p, q: float(q),
    "solve_pr": lambda p, q: q * q / p,
}
"""Tool-call branch of each reward variant: ``(p calls, q solving calls) -> reward``, p ≥ 1."""


@dataclass(frozen=True)
class TurnReward:
    """The reward of one assistant turn and how it was reached."""

    reward: float
    """The scalar reward."""
    branch: str
    """``tool_calls``, ``empty``, ``format_error``, ``abstained``, ``final_answer``, ``all_solved`` or
    ``no_answer``."""
    num_calls: int
    """p: calls that parsed this turn."""
    num_solved: int
    """q: calls that obtained an expected answer."""
    answers_left_before: int
    """t: answers left in the unsolved map before the turn."""
    solved: tuple[tuple[str, str], ...]
    """``(tool name, answer)`` for every answer obtained, in call order."""
    unsolved_after: dict[str, list[str]]
    """The unsolved map after removing the obtained answers."""


def call_key(name: str, arguments: Mapping[str, Any]) -> str:
    """The identity of a call for duplicate charges: its tool name and canonical JSON arguments."""
    return name + json.dumps(arguments, sort_keys=True, default=str)


def call_charge(
    keys: Sequence[str],
    failed: Sequence[bool],
    earlier: Collection[str],
    error_charge: float,
    duplicate_charge: float,
) -> float:
    """The charge taken off a tool-call turn's reward (an option beside SPEC 3; 0 by default).

    SPEC 3 gives a failed call and a repeated call the same 0 as a call that was never made, so a policy
    loses nothing by spraying calls that error or by sending a failing call again. With charges, each
    call whose result is an error costs ``error_charge``, and each call identical (same tool, same
    arguments) to one made earlier in the episode, or earlier in the same turn, costs
    ``duplicate_charge``; a repeated failing call pays both.

    Args:
        keys: :func:`call_key` of every parsed call of the turn, in order.
        failed: Whether each call's result is an error.
        earlier: Keys of the episode's calls before this turn.
        error_charge: Charge per failed call (>= 0).
        duplicate_charge: Charge per duplicate call (>= 0).

    Returns:
        The total charge, to subtract from the turn's reward.
    """
    seen = set(earlier)
    duplicates = 0
    for key in keys:
        duplicates += key in seen
        seen.add(key)
    return error_charge * sum(failed) + duplicate_charge * duplicates


def normalize(text: str) -> str:
    """Lower-case, remove commas and strip (SPEC 3.5).

    Args:
        text: Any text.

    Returns:
        The normalised text.
    """
    return text.lower().replace(",", "").strip()


def result_text(value: Any) -> str:
    """Render a tool's return value as the agent reads it: JSON for dicts and lists, else ``str()``.

    Args:
        value: A tool's return value.

    Returns:
        The text form.
    """
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def verify_answer(result: Any, expected: str) -> bool:
    """Whether a tool result verifies against an expected answer (SPEC 3.5).

    Args:
        result: The tool result, as text or as the returned value.
        expected: One expected answer; split on ``", "`` into pieces that must all appear.

    Returns:
        True when every normalised piece is a substring of the normalised result.
    """
    haystack = normalize(result if isinstance(result, str) else result_text(result))
    return all(normalize(piece) in haystack for piece in expected.split(", "))


def count_answers(unsolved: Mapping[str, Sequence[str]]) -> int:
    """Number of answers in an unsolved map.

    Args:
        unsolved: Tool name → expected answers.

    Returns:
        The total number of answers.
    """
    return sum(len(answers) for answers in unsolved.values())


def turn_reward(
    text: str,
    call_results: Sequence[tuple[str, str | None]],
    unsolved: Mapping[str, Sequence[str]],
    answer: str | None = None,
    solve_rate: float = 0.0,
    variant: str = "solve_f1",
    malformed_calls: int = 0,
    abstention_reward: float | None = None,
) -> TurnReward:
    """Score one assistant turn exactly as SPEC 3, plus the abstention branch.

    Args:
        text: The visible response text (after any reasoning block); end markers are stripped here.
        call_results: ``(tool name, result text)`` for every parsed call, in order; the result is
            None when the call failed (an error result never solves).
        unsolved: Tool name → answers still to obtain, before the turn (not modified).
        answer: The task's final answer; None or empty means the task has none.
        solve_rate: Fraction of sub-problems solved before the turn.
        variant: A key of :data:`REWARD_VARIANTS`.
        malformed_calls: Call attempts that did not parse (for message actions whose
            ``tool_calls`` were malformed, possibly with no content); they make a call-free turn a
            format error rather than an empty one.
        abstention_reward: The reward of a call-free turn that is neither empty nor a format error,
            on a task that expects no call; None (the default) for every other task.

    Returns:
        The reward and its breakdown.

    Raises:
        KeyError: ``variant`` is not a known variant.
    """
    tool_branch = REWARD_VARIANTS[variant]
    left = {name: list(answers) for name, answers in unsolved.items()}
    t = count_answers(left)
    if call_results:
        solved = []
        for name, result in call_results:
            if result is None:
                continue
            candidates = left.get(name, ())
            for i, expected in enumerate(candidates):
                if verify_answer(result, expected):
                    solved.append((name, candidates.pop(i)))
                    break
        p, q = len(call_results), len(solved)
        return TurnReward(tool_branch(p, q), "tool_calls", p, q, t, tuple(solved), left)
    reward, branch = _no_call_reward(strip_end_markers(text), answer, solve_rate, t, malformed_calls,
                                     abstention_reward)
    return TurnReward(reward, branch, 0, 0, t, (), left)


def scored_calls_reward(num_calls: int, num_matched: int, expected_left: int, variant: str = "solve_f1") -> TurnReward:
    """The reward of a turn with calls on a task judged by a call scorer (``ftrl_gym.scoring``).

    SPEC 3's tool-call branch with q = the calls that each match a distinct expected call.

    Args:
        num_calls: p, calls that parsed this turn (at least 1).
        num_matched: q, calls the scorer matched (at most ``num_calls``).
        expected_left: t, expected calls not yet matched before the turn.
        variant: A key of :data:`REWARD_VARIANTS`.

    Returns:
        The reward and its breakdown (no answers are listed as solved).
    """
    reward = REWARD_VARIANTS[variant](num_calls, num_matched)
    return TurnReward(reward, "tool_calls", num_calls, num_matched, expected_left, (), {})


def _no_call_reward(
    text: str, answer: str | None, solve_rate: float, t: int, malformed_calls: int,
    abstention_reward: float | None = None,
) -> tuple[float, str]:
    """SPEC 3.4: the reward of a turn without a parsed call, and the branch taken."""
    if not text and not malformed_calls:
        return EMPTY_RESPONSE_REWARD, "empty"
    if malformed_calls or any(tag in text for tag in TOOL_CALL_TAGS):
        return FORMAT_ERROR_REWARD, "format_error"
    if abstention_reward is not None:
        return abstention_reward, "abstained"
    if answer and normalize(answer) in normalize(text):
        return 1.0 / (1 + t), "final_answer"
    if solve_rate == 1:
        return ALL_SOLVED_REWARD, "all_solved"
    return 0.0, "no_answer"


def episode_metrics(total_answers: int, calls: int, solved: int) -> dict[str, float]:
    """The paper's episode metrics.

    Args:
        total_answers: T, answers expected at the start of the episode.
        calls: C, tool calls made in the episode.
        solved: S, answers obtained.

    Returns:
        ``solve_p`` = S/C (1.0 when C = 0), ``solve_r`` = S/T (1.0 when T = 0) and
        ``solve_f1`` = 2S/(C + T) (1.0 when C + T = 0).
    """
    return {
        "solve_p": solved / calls if calls else 1.0,
        "solve_r": solved / total_answers if total_answers else 1.0,
        "solve_f1": 2 * solved / (calls + total_answers) if calls + total_answers else 1.0,
    }


def pending_turn_reward(num_calls: int, expected_left: int) -> TurnReward:
    """An assistant turn with calls on a task judged per user turn: 0 until the user turn ends.

    Args:
        num_calls: p, calls that parsed this turn.
        expected_left: t, expected calls not yet matched before the turn.
    """
    return TurnReward(0.0, "pending", num_calls, 0, expected_left, (), {})


def user_turn_reward(
    turn_calls: int, matched: int, expected: int, expected_left: int, variant: str = "solve_f1",
    abstention_reward: float = ABSTENTION_REWARD,
) -> TurnReward:
    """The reward of the call-free turn that ends a user turn judged as a whole: the user turn's own
    Solve-P/R/F1 (``episode_metrics`` over its calls), so a perfect user turn earns 1.

    Args:
        turn_calls: p, calls the agent made during the user turn (already counted at their turns).
        matched: q, gold calls the judge credits (0 when it refuses the turn).
        expected: g, gold calls of the user turn.
        expected_left: t, expected calls not yet matched before the turn.
        variant: A key of :data:`REWARD_VARIANTS`; ``solve_pr`` is Solve-P times Solve-R.
        abstention_reward: The reward of a user turn without gold calls and without a call.

    Returns:
        The reward; ``num_calls`` is 0 and ``num_solved`` is q (so the episode counts C once, S by q).
    """
    if expected == 0:
        reward, branch = (abstention_reward, "abstained") if turn_calls == 0 else (0.0, "user_turn_judged")
        return TurnReward(reward, branch, 0, 0, expected_left, (), {})
    metrics = episode_metrics(expected, turn_calls, matched)
    metrics["solve_pr"] = metrics["solve_p"] * metrics["solve_r"]
    return TurnReward(metrics[variant], "user_turn_judged", 0, matched, expected_left, (), {})
