"""Plain-text renderings of a conversation: what a Hermes-format model reads, and explanations of outcomes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ftrl_gym.parsing import ParsedResponse, content_text
from ftrl_gym.reward import TurnReward

TRUNCATION_MARKER = "\n…[observation truncated at {limit} characters]"
"""Appended when an observation is cut to fit the observation space."""

_BRANCH_TEXT = {
    "empty": "the response is empty",
    "format_error": "the response has tool-call syntax but no call could be parsed",
    "abstained": "the task expects no call and none was made (correct abstention)",
    "final_answer": "the final answer appears in the response",
    "all_solved": "every sub-problem is solved but the response does not state the final answer",
    "no_answer": "the response neither calls a tool nor states the final answer",
    "user_turn_judged": "the last user turn was judged by the task's turn scorer",
}


def tool_response_block(text: str) -> str:
    """Wrap one tool result the way Hermes/Qwen chat templates show it to the model.

    Args:
        text: The tool message content.

    Returns:
        ``<tool_response>\\n{text}\\n</tool_response>``.
    """
    return f"<tool_response>\n{text}\n</tool_response>"


def tool_call_block(name: str, arguments: Any) -> str:
    """Render one call as a Hermes ``<tool_call>`` block.

    Args:
        name: The tool name.
        arguments: Arguments as a dict or as the JSON string of OpenAI messages.

    Returns:
        ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>``.
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}\n</tool_call>"


def render_message(message: dict[str, Any]) -> str:
    """The text a Hermes-format model reads for one message (without role headers).

    Args:
        message: An OpenAI chat message.

    Returns:
        Its content; tool messages in ``<tool_response>`` and assistant calls as ``<tool_call>`` blocks.
    """
    content = content_text(message.get("content"))
    if message.get("role") == "tool":
        return tool_response_block(content)
    calls = [
        tool_call_block(c["function"]["name"], c["function"].get("arguments", {}))
        for c in message.get("tool_calls") or ()
        if isinstance(c, dict) and isinstance(c.get("function"), dict)
    ]
    return "\n".join(part for part in (content, *calls) if part)


def render_messages(messages: Iterable[dict[str, Any]]) -> str:
    """Join the renderings of several messages with blank lines (the reset observation).

    Args:
        messages: OpenAI chat messages.

    Returns:
        The joined text.
    """
    return "\n\n".join(text for text in map(render_message, messages) if text)


def render_transcript(messages: Iterable[dict[str, Any]]) -> str:
    """A readable transcript with role headers (``render_mode="ansi"``).

    Args:
        messages: OpenAI chat messages.

    Returns:
        ``[role]`` headers followed by each message's rendering.
    """
    return "\n\n".join(f"[{m.get('role', '?')}]\n{render_message(m)}" for m in messages)


def explain_outcome(parsed: ParsedResponse, outcome: TurnReward) -> str:
    """The observation of a turn that ends the episode: why it ended and how it was scored.

    Args:
        parsed: The parsed response.
        outcome: Its reward breakdown.

    Returns:
        One paragraph of explanation, listing parse errors if there were any.
    """
    lines = [
        (
            f"Episode over: no tool call was made; {_BRANCH_TEXT[outcome.branch]} "
            f"(reward {outcome.reward:g}, {outcome.answers_left_before} expected answer(s) not obtained)."
        )
    ]
    lines += [f"- skipped: {error}" for error in parsed.errors]
    return "\n".join(lines)


def fit(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with a marker when it was cut.

    Args:
        text: The observation.
        limit: The observation space's ``max_length``.

    Returns:
        ``text`` itself when it fits.
    """
    if len(text) <= limit:
        return text
    marker = TRUNCATION_MARKER.format(limit=limit)
    return text[: max(0, limit - len(marker))] + marker[: limit]

