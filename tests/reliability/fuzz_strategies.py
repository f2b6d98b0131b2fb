"""Hypothesis strategies for hostile agent actions, malformed task records and random tool code."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

SPECIAL = ["\x00", "\ud800", "\udfff", "\ufeff", "\u202e", "\r", "\n", "<", ">", "{", "}", "[", "]", '"',
           "\\", ",", ":", "<tool_call>", "</tool_call>", "<|python_tag|>", "<think>", "</think>",
           "<|im_end|>", "<|endoftext|>", "<|eom_id|>", "\U0001f600"]
"""Characters and fragments that stress parsers: NUL, lone surrogates, BOM, bidi override, tags."""

any_char = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.sampled_from(SPECIAL))
"""Any code point, lone surrogates included, with a bias towards the fragments above."""


def any_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Unicode text over :data:`any_char`."""
    return st.lists(any_char, max_size=max_size).map("".join)


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), any_text(20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text(8), inner, max_size=4),
    max_leaves=12,
)
"""JSON-like values (NaN and infinities included, as Python's json module writes them)."""


def nested(depth: int, opener: str) -> str:
    """``depth`` unclosed or closed nesting levels of ``[`` or ``{"a":`` around a 1."""
    if opener == "[":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _block(name: Any, arguments: Any, form: str) -> str:
    body = {"name": name, "arguments": arguments}
    encoded = json.dumps(body, ensure_ascii=False)
    if form == "ok":
        return f"<tool_call>\n{encoded}\n</tool_call>"
    if form == "args_as_string":
        return "<tool_call>" + json.dumps({"name": name, "arguments": json.dumps(arguments)}) + "</tool_call>"
    if form == "no_close":
        return f"<tool_call>\n{encoded}"
    if form == "no_open":
        return f"{encoded}\n</tool_call>"
    if form == "nested":
        return f"<tool_call><tool_call>{encoded}</tool_call></tool_call>"
    if form == "truncated":
        return f"<tool_call>{encoded[: max(1, len(encoded) // 2)]}</tool_call>"
    if form == "python_tag":
        return f"<|python_tag|>{json.dumps({'name': name, 'parameters': arguments})}; {encoded}"
    if form == "think":
        return f"<think>{encoded}</think><tool_call>{encoded}</tool_call><|im_end|>"
    return f"<tool_call>{encoded}</tool_call>" * 3


BLOCK_FORMS = ["ok", "args_as_string", "no_close", "no_open", "nested", "truncated", "python_tag", "think",
               "repeated"]


def tool_call_text(tool_names: Sequence[str]) -> st.SearchStrategy[str]:
    """Text with Hermes / Llama tool-call blocks, well-formed or broken, around random text."""
    names = st.sampled_from(list(tool_names)) | any_text(12) | json_scalars
    block = st.builds(_block, names, json_values, st.sampled_from(BLOCK_FORMS))
    return st.lists(st.one_of(block, any_text(30)), min_size=1, max_size=5).map("".join)


def enormous_actions(tool_names: Sequence[str]) -> st.SearchStrategy[str]:
    """Megabyte arguments, nesting thousands deep, integers past the 4300-digit limit, NUL floods."""
    name = st.sampled_from(list(tool_names))
    blob = st.builds(lambda n, size: _block(n, {"blob": "x" * size}, "ok"), name,
                     st.integers(100_000, 3_000_000))
    deep_block = st.builds(lambda d, o: f"<tool_call>{nested(d, o)}</tool_call>", st.integers(500, 20_000),
                           st.sampled_from(["[", "{"]))
    deep_args = st.builds(lambda n, d, o: f'<tool_call>{{"name": "{n}", "arguments": {{"x": {nested(d, o)}}}}}'
                                          f"</tool_call>", name, st.integers(500, 20_000), st.sampled_from(["[", "{"]))
    deep_arg_string = st.builds(lambda n, d: _block(n, "[" * d, "ok"), name, st.integers(500, 20_000))
    big_int = st.builds(lambda n, d: f'<tool_call>{{"name": "{n}", "arguments": {{"x": {"7" * d}}}}}</tool_call>',
                        name, st.integers(4000, 8000))
    python_tag_deep = st.builds(lambda d: "<|python_tag|>" + "[" * d, st.integers(500, 20_000))
    nul_flood = st.builds(lambda n: "\x00" * n + "<tool_call>\x00</tool_call>", st.integers(1, 100_000))
    many_calls = st.builds(lambda n, k: _block(n, {}, "ok") * k, name, st.integers(50, 400))
    return st.one_of(blob, deep_block, deep_args, deep_arg_string, big_int, python_tag_deep, nul_flood,
                     many_calls)


class Opaque:
    """An object no JSON encoder knows."""

    def __repr__(self) -> str:
        return "Opaque()"


class DeepDict(dict):
    """A dict nested ``depth`` levels (deeper than a JSON encoder recurses), with a short ``repr``."""

    def __init__(self, depth: int) -> None:
        value: dict[str, Any] = {}
        for _ in range(depth - 1):
            value = {"a": value}
        super().__init__(a=value)
        self.depth = depth

    def __repr__(self) -> str:
        return f"DeepDict({self.depth})"


python_objects = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True), st.complex_numbers(), st.binary(max_size=40),
    st.lists(json_scalars, max_size=3), st.tuples(json_scalars), st.frozensets(st.integers(), max_size=3),
    st.builds(Opaque), st.builds(lambda: float("nan")), st.builds(lambda: 10 ** 5000),
    st.builds(DeepDict, st.integers(1, 3000)),
)
"""Values that are not agent text at all, JSON-unsafe ones included."""


def message_dicts(tool_names: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """OpenAI-style assistant messages, with every field of every shape."""
    names = st.sampled_from(list(tool_names)) | any_text(10) | python_objects
    arguments = st.one_of(json_values, json_values.map(json.dumps), any_text(20), python_objects,
                          st.dictionaries(any_text(5), python_objects, max_size=3))
    function = st.one_of(
        st.fixed_dictionaries({"name": names}, optional={"arguments": arguments, "parameters": arguments}),
        python_objects,
    )
    entry = st.one_of(
        st.fixed_dictionaries({"function": function},
                              optional={"id": any_text(8) | python_objects, "type": st.just("function")}),
        python_objects,
    )
    part = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": any_text(20) | python_objects}),
                     python_objects)
    content = st.one_of(any_text(60), tool_call_text(tool_names), st.lists(part, max_size=3), python_objects)
    tool_calls = st.one_of(st.lists(entry, max_size=4), entry, python_objects)
    return st.fixed_dictionaries(
        {}, optional={"role": st.sampled_from(["assistant", "user", "tool"]) | any_text(5),
                      "content": content, "tool_calls": tool_calls},
    )


def actions(tool_names: Sequence[str]) -> st.SearchStrategy[Any]:
    """Anything an agent (or a broken agent loop) might pass to ``env.step``."""
    return st.one_of(
        any_text(200),
        tool_call_text(tool_names),
        tool_call_text(tool_names),
        enormous_actions(tool_names),
        message_dicts(tool_names),
        python_objects,
    )


def finite_reward(value: float) -> bool:
    """A reward the trainer can use: a finite float."""
    return isinstance(value, float) and math.isfinite(value)
