"""Parsing of Hermes, OpenAI and Llama tool calls from assistant responses."""

from __future__ import annotations

import json

import pytest

from ftrl_gym.parsing import (
    MAX_ARGUMENTS_LENGTH,
    MAX_JSON_DEPTH,
    MAX_NAME_LENGTH,
    ParsedCall,
    json_extent,
    parse_response,
    split_reasoning,
    strip_end_markers,
)


def test_hermes_blocks_with_object_and_string_arguments():
    text = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>{"name": "get_capital", "arguments": "{\\"country\\": \\"Peru\\"}"}</tool_call><|im_end|>'
    )
    parsed = parse_response(text, id_prefix="call_3")
    assert parsed.calls == (
        ParsedCall("call_3_0", "get_weather", {"city": "Paris"}),
        ParsedCall("call_3_1", "get_capital", {"country": "Peru"}),
    )
    assert parsed.errors == ()
    assert parsed.message["content"] == "Let me check."
    assert [c["function"]["arguments"] for c in parsed.message["tool_calls"]] == [
        '{"city": "Paris"}',
        '{"country": "Peru"}',
    ]
    assert parsed.message["tool_calls"][1]["id"] == "call_3_1"


def test_missing_arguments_mean_no_arguments():
    assert parse_response('<tool_call>{"name": "now"}</tool_call>').calls[0].arguments == {}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[1, 2]", "must be a JSON object with a 'name', got list"),
        ('{"arguments": {}}', "has no string 'name'"),
        ('{"name": "f", "arguments": [1]}', "arguments must be a JSON object, got list"),
        ('{"name": "f", "arguments": "{bad"}', "arguments are a string but not valid JSON"),
        ("{oops", "invalid JSON"),
    ],
)
def test_unparsable_blocks_are_counted_and_explained(body, reason):
    parsed = parse_response(f'<tool_call>{body}</tool_call><tool_call>{{"name": "ok"}}</tool_call>')
    assert [c.name for c in parsed.calls] == ["ok"]
    assert parsed.num_unparsable == 1
    assert parsed.errors[0].startswith("<tool_call> block 1: ")
    assert reason in parsed.errors[0]
    assert parsed.calls[0].id == "call_0"


def test_unclosed_tag_is_an_error_not_a_call():
    parsed = parse_response('<tool_call>{"name": "f"}')
    assert parsed.calls == ()
    assert parsed.has_call_syntax
    assert "without its matching" in parsed.errors[0]


def test_reasoning_is_kept_in_the_message_but_not_parsed():
    text = '<think>maybe <tool_call>{"name": "hidden"}</tool_call></think>\nThe answer is 4.'
    parsed = parse_response(text)
    assert parsed.calls == ()
    assert not parsed.has_call_syntax
    assert parsed.reasoning == 'maybe <tool_call>{"name": "hidden"}</tool_call>'
    assert parsed.content == "The answer is 4."
    assert parsed.message["content"] == text


def test_split_reasoning_variants():
    assert split_reasoning("thought</think>answer") == ("thought", "answer")
    assert split_reasoning("<think>cut off") == ("cut off", "")
    assert split_reasoning("plain") == (None, "plain")
    assert split_reasoning("a <think>b</think> c") == (None, "a <think>b</think> c")


def test_strip_end_markers_removes_only_trailing_markers():
    assert strip_end_markers(" hi <|im_end|>\n<|endoftext|> ") == "hi"
    assert strip_end_markers("<|im_end|> hi") == "<|im_end|> hi"


def test_openai_message_with_tool_calls():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "abc", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
            {"type": "function", "function": {"name": "g", "arguments": {"y": 2}}},
            {"type": "function", "function": {"arguments": "{}"}},
        ],
    }
    parsed = parse_response(message, id_prefix="call_1")
    assert parsed.calls == (ParsedCall("abc", "f", {"x": 1}), ParsedCall("call_1_1", "g", {"y": 2}))
    assert parsed.errors == ("tool_calls[2]: the call has no string 'name'",)
    assert parsed.message["content"] == ""
    assert json.loads(parsed.message["tool_calls"][1]["function"]["arguments"]) == {"y": 2}


def test_openai_message_without_tool_calls_parses_its_content():
    parsed = parse_response({"role": "assistant", "content": '<tool_call>{"name": "f"}</tool_call>'})
    assert [c.name for c in parsed.calls] == ["f"]
    parts = parse_response({"content": [{"type": "text", "text": "The answer"}, {"type": "text", "text": " is 4"}]})
    assert parts.content == "The answer is 4"


def test_llama_python_tag_calls():
    text = 'Checking.<|python_tag|>{"name": "f", "parameters": {"x": 1}}; {"name": "g", "parameters": {}}<|eom_id|>'
    parsed = parse_response(text)
    assert parsed.calls == (ParsedCall("call_0", "f", {"x": 1}), ParsedCall("call_1", "g", {}))
    assert parsed.message["content"] == "Checking."
    broken = parse_response("<|python_tag|>{not json")
    assert broken.calls == () and broken.has_call_syntax
    assert "invalid JSON" in broken.errors[0]


@pytest.mark.parametrize("action", [None, 42, ["<tool_call>"]])
def test_non_text_actions_are_explained_not_raised(action):
    parsed = parse_response(action)
    assert parsed.calls == ()
    assert "not response text or an assistant message" in parsed.errors[0]
    assert parsed.content == ""


def test_bytes_are_decoded_as_utf8():
    assert parse_response(b'<tool_call>{"name": "f"}</tool_call>').calls[0].name == "f"


def test_json_extent_counts_without_recursion_and_stops_past_its_maxima():
    values = (1, {}, [1], {"a": [1, {"b": 2}]}, ([[]],))
    assert [json_extent(v) for v in values] == [(0, 0), (1, 0), (1, 1), (3, 4), (3, 2)]
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert json_extent(deep, max_depth=10) == (11, 10)
    loop: list = []
    loop.append(loop)
    assert json_extent(loop)[0] == MAX_JSON_DEPTH + 1
    shared: list = []
    for _ in range(60):
        shared = [shared, shared]  # 2**60 elements once written out
    assert json_extent(shared, max_items=1000) == (9, 1002)


def test_limits_accept_calls_at_the_limit_and_refuse_one_past_it():
    def block(name, arguments):
        return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"

    def nested(depth):
        value = {}
        for _ in range(depth - 1):
            value = {"a": value}
        return value

    at_limit = parse_response(block("n" * MAX_NAME_LENGTH, nested(MAX_JSON_DEPTH)))
    assert len(at_limit.calls) == 1 and at_limit.errors == ()
    past = parse_response(block("n" * (MAX_NAME_LENGTH + 1), {}) + block("f", nested(MAX_JSON_DEPTH + 1)))
    assert past.calls == ()
    assert past.errors == (
        f"<tool_call> block 1: the tool name is {MAX_NAME_LENGTH + 1} characters long; a name has at most 256",
        "<tool_call> block 2: call of 'f': arguments are nested more than 64 levels deep",
    )
    blob = "x" * (MAX_ARGUMENTS_LENGTH - len('{"s": ""}'))
    assert parse_response(block("f", {"s": blob})).calls[0].arguments == {"s": blob}
    assert "arguments are 262145 characters of JSON, more than 262144" in parse_response(
        block("f", {"s": blob + "y"})).errors[0]


def test_message_arguments_become_plain_json_values():
    class Text(str):
        pass

    parsed = parse_response({"tool_calls": [{"id": "x" * 300, "function": {
        "name": Text("f"), "arguments": {"a": (1, 2), 3: Text("b")}}}]}, id_prefix="call_2")
    call = parsed.calls[0]
    assert call == ParsedCall("call_2_0", "f", {"a": [1, 2], "3": "b"})
    assert type(call.name) is str and type(call.arguments["3"]) is str


def test_tool_calls_that_are_not_a_list_are_a_format_error():
    parsed = parse_response({"content": "ok", "tool_calls": {"function": {"name": "f"}}})
    assert parsed.calls == () and parsed.has_call_syntax
    assert parsed.errors == ("tool_calls must be a list of {'function': {'name', 'arguments'}} entries, got dict",)
    assert parse_response({"content": '<tool_call>{"name": "f"}</tool_call>', "tool_calls": []}).calls[0].name == "f"


def test_end_marker_flood_is_stripped_like_one_marker():
    assert strip_end_markers("hi" + " <|im_end|>\n<|endoftext|>" * 100_000) == "hi"
