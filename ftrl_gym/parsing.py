"""Assistant response → tool calls: Hermes/Qwen ``<tool_call>``, OpenAI ``tool_calls``, Llama ``<|python_tag|>``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

END_MARKERS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")
"""End-of-turn markers removed from the end of a response before parsing (SPEC 3.1)."""

TOOL_CALL_TAGS: tuple[str, ...] = ("<tool_call>", "</tool_call>", "<|python_tag|>")
"""Tag fragments that mark a response as a (possibly failed) tool-call attempt."""

_HERMES_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_PYTHON_TAG = "<|python_tag|>"
_LLAMA_STOP = ("<|eom_id|>", "<|eot_id|>")
_DECODER = json.JSONDecoder()
_ENCODER = json.JSONEncoder(ensure_ascii=False)


@dataclass(frozen=True)
class ParsedCall:
    """One tool call that parsed: a name and keyword arguments."""

    id: str
    """Call id used in the OpenAI messages (``call_<turn>_<i>`` unless the message gave one)."""
    name: str
    """The tool name as written by the model."""
    arguments: dict[str, Any]
    """Keyword arguments for the tool."""


@dataclass(frozen=True)
class ParsedResponse:
    """What an assistant response contains, and the OpenAI message that records it."""

    text: str
    """The response text with trailing end markers removed and whitespace stripped."""
    reasoning: str | None
    """The leading ``<think>…</think>`` block's content, if any; never parsed for calls."""
    content: str
    """The text after the reasoning block: what the reward's no-call branch reads."""
    calls: tuple[ParsedCall, ...]
    """The calls that parsed, in order."""
    errors: tuple[str, ...]
    """One line per call attempt that did not parse (skipped, never raised)."""
    has_call_syntax: bool
    """The content holds a tool-call tag or a ``tool_calls`` entry, parsed or not."""
    message: dict[str, Any]
    """The OpenAI-format assistant message (``content`` keeps reasoning; ``tool_calls`` ids set)."""

    @property
    def num_unparsable(self) -> int:
        """Number of call attempts that were skipped."""
        return len(self.errors)


def strip_end_markers(text: str) -> str:
    """Remove trailing end-of-turn markers and surrounding whitespace (SPEC 3.1).

    Args:
        text: A raw model response.

    Returns:
        The stripped text.
    """
    text = text.strip()
    while text.endswith(END_MARKERS):
        for marker in END_MARKERS:
            if text.endswith(marker):
                text = text[: -len(marker)].rstrip()
    return text


def content_text(content: Any) -> str:
    """The text of an OpenAI message ``content``: a string, a list of text parts, or None.

    Args:
        content: The message's ``content`` value.

    Returns:
        The text; ``""`` for None or anything that is not text.
    """
    if isinstance(content, list):
        texts = (part.get("text") for part in content if isinstance(part, Mapping))
        return "".join(text for text in texts if isinstance(text, str))
    return content if isinstance(content, str) else ""


def split_reasoning(text: str) -> tuple[str | None, str]:
    """Split a leading ``<think>…</think>`` block from the rest of a response.

    A response that starts inside the reasoning (the chat template opened ``<think>``) and only
    closes it is handled too; an unclosed ``<think>`` makes the whole response reasoning.

    Args:
        text: The stripped response.

    Returns:
        ``(reasoning, content)``; reasoning is None when there is no reasoning block.
    """
    close = text.find("</think>")
    starts_open = text.startswith("<think>")
    if close < 0:
        return (text[len("<think>"):].strip(), "") if starts_open else (None, text)
    head = text[:close]
    if starts_open:
        head = head[len("<think>"):]
    elif "<think>" in head:
        return None, text
    return head.strip(), text[close + len("</think>"):].strip()


def parse_response(action: Any, id_prefix: str = "call") -> ParsedResponse:
    """Parse an assistant response into tool calls, never raising on malformed input.

    Args:
        action: Raw response text, or an OpenAI assistant message dict (``content`` and optional
            ``tool_calls``). Anything else is treated as an empty response with one error.
        id_prefix: Prefix of generated call ids (``<prefix>_<i>``).

    Returns:
        The parsed response; calls that do not parse are listed in ``errors``.
    """
    if isinstance(action, Mapping):
        return _parse_message(action, id_prefix)
    if isinstance(action, (bytes, bytearray)):
        action = bytes(action).decode("utf-8", errors="replace")
    if not isinstance(action, str):
        error = f"the action is {type(action).__name__}, not response text or an assistant message"
        return _build("", None, "", [], [error], False, id_prefix, "")
    text = strip_end_markers(action)
    reasoning, content = split_reasoning(text)
    calls, errors, leftover = _parse_text_calls(content)
    has_syntax = any(tag in content for tag in TOOL_CALL_TAGS)
    message_content = (text[: len(text) - len(content)] + leftover).strip()
    return _build(text, reasoning, content, calls, errors, has_syntax, id_prefix, message_content)


def _parse_text_calls(content: str) -> tuple[list[tuple[str | None, str, dict]], list[str], str]:
    """Find Hermes blocks, or else Llama python-tag JSON; return calls, errors and leftover text."""
    calls: list[tuple[str | None, str, dict]] = []
    errors: list[str] = []
    if "<tool_call>" in content or "</tool_call>" in content:
        kept, last = [], 0
        for i, match in enumerate(_HERMES_BLOCK.finditer(content), start=1):
            call, error = _call_from_json_text(match.group(1), "arguments")
            if error:
                errors.append(f"<tool_call> block {i}: {error}")
                continue
            calls.append(call)
            kept.append(content[last:match.start()])
            last = match.end()
        kept.append(content[last:])
        if not calls and not errors:
            errors.append("a <tool_call> tag without its matching closing or opening tag")
        return calls, errors, "".join(kept).strip()
    tag = content.find(_PYTHON_TAG)
    if tag >= 0:
        calls, errors = _parse_python_tag(content[tag + len(_PYTHON_TAG):])
        return calls, errors, content[:tag].strip()
    return calls, errors, content


def _parse_python_tag(rest: str) -> tuple[list[tuple[str | None, str, dict]], list[str]]:
    """Parse Llama-3.1 JSON calls after ``<|python_tag|>``, separated by whitespace or ``;``."""
    for stop in _LLAMA_STOP:
        rest = rest.split(stop, 1)[0]
    calls, errors = [], []
    pos, n = 0, len(rest)
    while True:
        while pos < n and (rest[pos].isspace() or rest[pos] == ";"):
            pos += 1
        if pos >= n:
            break
        index = len(calls) + len(errors) + 1
        try:
            obj, pos = _DECODER.raw_decode(rest, pos)
        except (ValueError, RecursionError) as exc:
            errors.append(f"<|python_tag|> call {index}: invalid JSON ({_json_problem(exc)})")
            break
        call, error = _call_from_object(obj, "parameters")
        if error:
            errors.append(f"<|python_tag|> call {index}: {error}")
        else:
            calls.append(call)
    if not calls and not errors:
        errors.append("<|python_tag|> is not followed by a JSON call")
    return calls, errors


def _call_from_json_text(body: str, args_key: str) -> tuple[Any, str | None]:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return None, f"invalid JSON ({_json_problem(exc)})"
    return _call_from_object(obj, args_key)


def _json_problem(exc: Exception) -> str:
    """Why ``json.loads`` refused a text: its message, or the limit it hit (nesting, integer digits)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at char {exc.pos}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return "an integer has too many digits" if "digits" in str(exc) else type(exc).__name__


def _call_from_object(obj: Any, args_key: str) -> tuple[Any, str | None]:
    """Turn ``{"name", args_key}`` into ``(None, name, arguments)`` or explain why not."""
    if not isinstance(obj, dict):
        return None, f"the call must be a JSON object with a 'name', got {type(obj).__name__}"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, "the call has no string 'name'"
    raw = obj.get(args_key, obj.get("arguments"))
    arguments, error = _decode_arguments(raw)
    if error:
        return None, f"call of {name!r}: {error}"
    return (None, name, arguments), None


def _decode_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """Arguments may be an object, a JSON string of an object, or absent."""
    if raw is None:
        return {}, None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError) as exc:
            return {}, f"arguments are a string but not valid JSON ({_json_problem(exc)})"
    if not isinstance(raw, dict):
        return {}, f"arguments must be a JSON object, got {type(raw).__name__}"
    return raw, None


def _encodable(arguments: dict[str, Any]) -> bool:
    """Whether arguments given as Python objects (a message action) can be sent to a tool as JSON."""
    try:
        _ENCODER.encode(arguments)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _parse_message(message: Mapping[str, Any], id_prefix: str) -> ParsedResponse:
    """Parse an OpenAI assistant message; without ``tool_calls`` its content is parsed as text."""
    raw_text = content_text(message.get("content"))
    entries = message.get("tool_calls")
    if not entries:
        return parse_response(raw_text, id_prefix)
    text = strip_end_markers(raw_text)
    reasoning, content = split_reasoning(text)
    calls, errors = [], []
    for i, entry in enumerate(entries if isinstance(entries, list) else [entries], start=1):
        function = entry.get("function") if isinstance(entry, Mapping) else None
        if not isinstance(function, Mapping):
            errors.append(f"tool_calls[{i - 1}]: expected {{'function': {{'name', 'arguments'}}}}")
            continue
        call, error = _call_from_object(dict(function), "arguments")
        if error is None and not _encodable(call[2]):
            error = f"call of {call[1]!r}: arguments are not JSON-serialisable"
        if error:
            errors.append(f"tool_calls[{i - 1}]: {error}")
            continue
        given_id = entry.get("id")
        calls.append((given_id if isinstance(given_id, str) and given_id else None, call[1], call[2]))
    return _build(text, reasoning, content, calls, errors, True, id_prefix, text)


def _build(
    text: str,
    reasoning: str | None,
    content: str,
    raw_calls: list[tuple[str | None, str, dict]],
    errors: list[str],
    has_syntax: bool,
    id_prefix: str,
    message_content: str,
) -> ParsedResponse:
    """Assign call ids and assemble the OpenAI assistant message."""
    calls = tuple(
        ParsedCall(given or f"{id_prefix}_{i}", name, arguments)
        for i, (given, name, arguments) in enumerate(raw_calls)
    )
    message: dict[str, Any] = {"role": "assistant", "content": message_content}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _ENCODER.encode(call.arguments)},
            }
            for call in calls
        ]
    return ParsedResponse(text, reasoning, content, calls, tuple(errors), has_syntax, message)
