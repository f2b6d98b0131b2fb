"""Per-turn budgets of ``ToolUseEnv``: calls run, wall time of the calls, and tool output kept.

The env applies them around the sandbox (whose own limits hold per call): see
:class:`~ftrl_gym.envs.config.ToolUseEnvConfig` for the settings and their defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

from ftrl_gym.sandbox import ToolResult

OUTPUT_CUT_MARKER = (
    "\n…[tool output cut: this turn's tool output reached max_output_bytes_per_turn={limit} bytes]"
)
"""Appended to the tool output that crosses the turn's output budget."""


def not_run(line: str) -> ToolResult:
    """The result of a call the env did not send to the sandbox.

    Args:
        line: The one-line error the agent reads (``error: call not run: ...``).

    Returns:
        A failed result with that line as text and error.
    """
    return ToolResult(ok=False, text=line, value=None, error=line, elapsed_s=0.0)


def over_call_budget(max_calls: int) -> ToolResult:
    """The result of a call past ``max_calls_per_turn``.

    Args:
        max_calls: The turn's call budget.

    Returns:
        ``error: call not run: this turn already made 16 calls (max_calls_per_turn=16)``.
    """
    return not_run(
        f"error: call not run: this turn already made {max_calls} calls (max_calls_per_turn={max_calls})"
    )


def over_time_budget(spent_s: float, turn_timeout: float) -> ToolResult:
    """The result of a call left when the turn's time is spent.

    Args:
        spent_s: Seconds the turn's calls took.
        turn_timeout: The turn's time budget.

    Returns:
        ``error: call not run: this turn's tool calls already took 31.2 s (turn_timeout=30 s)``.
    """
    return not_run(
        f"error: call not run: this turn's tool calls already took {spent_s:.1f} s "
        f"(turn_timeout={turn_timeout:g} s)"
    )


def batch_size(left_s: float, call_timeout_s: float, waiting: int) -> int:
    """How many of the waiting calls to send in the next sandbox round trip.

    As many as could all time out within the time left, so that no call starts after the budget is
    spent; one while any time is left (that call may run ``call_timeout_s`` past the budget).

    Args:
        left_s: Seconds left of the turn's budget.
        call_timeout_s: Seconds one call may take (the sandbox's ``timeout_s``).
        waiting: Calls not sent yet.

    Returns:
        0 once the budget is spent, else between 1 and ``waiting``.
    """
    if left_s <= 0 or waiting <= 0:
        return 0
    return max(1, min(waiting, int(left_s // call_timeout_s)))


def cut_outputs(results: Sequence[ToolResult], max_bytes: int) -> list[ToolResult]:
    """Keep at most ``max_bytes`` UTF-8 bytes of the turn's tool output, in call order.

    The result that crosses the budget keeps what fits, followed by :data:`OUTPUT_CUT_MARKER` (its
    ``value`` becomes None, as for the sandbox's own truncation); a result with nothing left to show,
    and an error line that does not fit whole, become one error line saying so.

    Args:
        results: The results of the calls that ran.
        max_bytes: ``max_output_bytes_per_turn``.

    Returns:
        One result per input result; the same objects where nothing was cut.
    """
    left = max_bytes
    out: list[ToolResult] = []
    for result in results:
        size = _utf8_size(result.text)
        if size <= left:
            left -= size
            out.append(result)
        elif result.ok and left > 0:
            text = _utf8_prefix(result.text, left) + OUTPUT_CUT_MARKER.format(limit=max_bytes)
            out.append(ToolResult(True, text, None, None, result.elapsed_s))
            left = 0
        else:
            line = (f"error: output not shown: this turn's tool output already reached "
                    f"max_output_bytes_per_turn={max_bytes} bytes")
            out.append(ToolResult(False, line, None, line, result.elapsed_s))
            left = 0
    return out


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _utf8_prefix(text: str, size: int) -> str:
    """The longest prefix of ``text`` that fits in ``size`` UTF-8 bytes (never half a character)."""
    if text.isascii():
        return text[:size]
    return text.encode("utf-8", "surrogatepass")[:size].decode("utf-8", "ignore")
