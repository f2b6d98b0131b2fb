"""Rendering a conversation and its tools into a prompt with the model's own chat template."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agents.base import Message, ToolSchema

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


def _call_text(call: dict[str, Any]) -> str:
    function = _decoded_call(call)["function"]
    body = json.dumps({"name": function.get("name"), "arguments": function.get("arguments", {})})
    return f"<tool_call>\n{body}\n</tool_call>"


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
        content = message.get("content") or ""
        if not isinstance(content, str):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        calls = message.get("tool_calls") or []
        if calls:
            content = "\n".join([content, *(_call_text(c) for c in calls)]).strip()
        flat.append({"role": str(message.get("role", "user")), "content": content})
    return flat


def structured_messages(messages: Sequence[Message]) -> list[Message]:
    """Copy OpenAI messages for tool-aware templates: ``None`` content as ``""``, arguments as dicts.

    Args:
        messages: The conversation, OpenAI format.

    Returns:
        New message dicts; native ``tool_calls`` are kept, their JSON-string arguments decoded.
    """
    copies = []
    for message in messages:
        copy = dict(message)
        copy["content"] = message.get("content") or ""
        if message.get("tool_calls"):
            copy["tool_calls"] = [_decoded_call(c) for c in message["tool_calls"]]
        copies.append(copy)
    return copies


def _decoded_call(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function", call))
    if isinstance(function.get("arguments"), str):
        try:
            function["arguments"] = json.loads(function["arguments"])
        except json.JSONDecodeError:
            pass
    return {**call, "type": "function", "function": function}


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
