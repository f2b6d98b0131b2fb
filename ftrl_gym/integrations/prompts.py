"""Per-task tool lists put into a conversation's system message, for trainers that render prompts without ``tools=``."""

from __future__ import annotations

from typing import Any

from ftrl_gym.integrations.verl import tools_system_prompt
from ftrl_gym.parsing import content_text


def with_tools_system_message(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The messages with ``tools_system_prompt(tools)`` appended to the system message (or as a new one).

    Args:
        messages: OpenAI chat messages (not modified).
        tools: OpenAI function-tool schemas.

    Returns:
        A new list of messages.
    """
    text = tools_system_prompt(tools)
    out = [dict(message) for message in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{content_text(out[0].get('content'))}\n\n{text}"
    else:
        out.insert(0, {"role": "system", "content": text})
    return out
