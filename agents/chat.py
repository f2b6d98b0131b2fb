"""Rendering a conversation and its tools into a prompt with the model's own chat template."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ftrl_gym.agents.base import Message, ToolSchema
from ftrl_gym.envs.chat_template import template_messages
from ftrl_gym.envs.rendering import tool_call_block
from ftrl_gym.parsing import content_text

TOOL_SYSTEM_PROMPT = """\
You can call functions to answer the user's question. The functions are listed, one JSON schema per \
line, between <tools> and </tools>:
<tools>
{tools}
</tools>
To call a function, reply with a JSON object holding its name and arguments between tags, one block per \
call:
<tool_call>
{{"name": "function_name", "arguments": {{"parameter": "value"}}}}
</tool_call>
The results come back as tool messages. When you know the answer, reply with it in plain text, \
without tags."""
"""The Hermes-format instructions given to models whose chat template ignores ``tools=``."""


def template_supports_tools(tokenizer: Any) -> bool:
    """Return True when the tokenizer's chat template renders the ``tools`` variable itself."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = " ".join(template.values())
    return "tools" in template


def text_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Flatten OpenAI messages into ``{"role", "content"}`` text for text-only chat templates.

    An assistant message's native ``tool_calls`` become ``<tool_call>`` blocks after its content, and a
    missing content becomes ``""``, so every template can render the whole episode.

    Args:
        messages: The conversation, OpenAI format.

    Returns:
        New message dicts holding only ``role`` and ``content`` strings.
    """
    flat = []
    for message in messages:
        content = content_text(message.get("content"))
        calls = [call.get("function") or {} for call in message.get("tool_calls") or []]
        if calls:
            blocks = (tool_call_block(call.get("name"), call.get("arguments", {})) for call in calls)
            content = "\n".join([content, *blocks]).strip()
        flat.append({"role": str(message.get("role", "user")), "content": content})
    return flat


structured_messages = template_messages
"""Copies for tool-aware templates: ``None`` content as ``""``, JSON-string arguments decoded."""


def render_prompt(tokenizer: Any, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> str:
    """Render the next-turn prompt with the tokenizer's chat template.

    Templates that render ``tools`` get them through ``tools=``. For a template that ignores them (such
    as SmolLM2's), the tool schemas and the ``<tool_call>`` format are stated in the system message
    (``TOOL_SYSTEM_PROMPT``), appended to an existing one.

    Args:
        tokenizer: A transformers tokenizer with a chat template.
        messages: The conversation so far.
        tools: The tool schemas.

    Returns:
        The prompt text, ending with the assistant generation prompt.
    """
    if template_supports_tools(tokenizer):
        return tokenizer.apply_chat_template(
            structured_messages(messages), tools=list(tools) or None, add_generation_prompt=True,
            tokenize=False,
        )
    flat = text_messages(messages)
    if not tools:
        return tokenizer.apply_chat_template(flat, add_generation_prompt=True, tokenize=False)
    schemas = "\n".join(json.dumps(t.get("function", t)) for t in tools)
    instructions = TOOL_SYSTEM_PROMPT.format(tools=schemas)
    if flat and flat[0]["role"] == "system":
        flat[0] = {"role": "system", "content": f"{flat[0]['content']}\n\n{instructions}"}
    else:
        flat.insert(0, {"role": "system", "content": instructions})
    return tokenizer.apply_chat_template(flat, add_generation_prompt=True, tokenize=False)
