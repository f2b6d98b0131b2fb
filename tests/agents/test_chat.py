"""Prompt rendering: the model's own template with tools=, or the Hermes tool prompt when it ignores them."""

from __future__ import annotations

import json
from typing import Any

from ftrl_gym.agents.chat import TOOL_SYSTEM_PROMPT, render_prompt, structured_messages, text_messages

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
CALL = {"id": "call_1_0", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
MESSAGES = [
    {"role": "user", "content": "q"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1_0", "name": "f", "content": "42"},
]


class FakeTokenizer:
    """Records what apply_chat_template was given."""

    def __init__(self, template: str) -> None:
        self.chat_template = template
        self.calls: list[dict[str, Any]] = []

    def apply_chat_template(self, messages, **kwargs):
        self.calls.append({"messages": messages, **kwargs})
        return "PROMPT"


def test_text_messages_flatten_native_tool_calls() -> None:
    flat = text_messages(MESSAGES)
    assert flat[1] == {
        "role": "assistant", "content": '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>'
    }
    assert flat[2] == {"role": "tool", "content": "42"}


def test_structured_messages_decode_arguments_and_keep_ids() -> None:
    copies = structured_messages([*MESSAGES, {"role": "assistant", "content": None}])
    assert copies[1]["tool_calls"][0]["function"]["arguments"] == {"x": 1}
    assert copies[2]["tool_call_id"] == "call_1_0"
    assert copies[3]["content"] == ""
    assert MESSAGES[1]["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'


def test_a_tool_aware_template_gets_tools() -> None:
    tokenizer = FakeTokenizer("{% if tools %}...{% endif %}")
    assert render_prompt(tokenizer, MESSAGES, TOOLS) == "PROMPT"
    call = tokenizer.calls[0]
    assert call["tools"] == TOOLS and call["add_generation_prompt"] and call["tokenize"] is False
    assert call["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"x": 1}


def test_a_template_without_tools_gets_the_tool_prompt_in_the_system_message() -> None:
    tokenizer = FakeTokenizer("{% for m in messages %}{{ m.content }}{% endfor %}")
    render_prompt(tokenizer, [{"role": "system", "content": "Be brief."}, *MESSAGES], TOOLS)
    system = tokenizer.calls[0]["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("Be brief.\n\nYou can call functions")
    assert json.dumps(TOOLS[0]["function"]) in system["content"]
    assert "tools" not in tokenizer.calls[0]
    render_prompt(tokenizer, MESSAGES, TOOLS)
    assert tokenizer.calls[1]["messages"][0]["content"] == TOOL_SYSTEM_PROMPT.format(
        tools=json.dumps(TOOLS[0]["function"])
    )
