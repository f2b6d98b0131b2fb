"""Assistant response → tool calls: Hermes/Qwen ``<tool_call>``, OpenAI ``tool_calls``, Llama ``<|python_tag|>``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

END_MARKERS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")
"""End-of-turn markers removed from the end of a response before parsing (SPEC 3.1)."""

TOOL_CALL_TAGS: tuple[str, ...] = ("<tool_call>", "</tool_call>", "<|python_tag|>")
"""Tag fragments that mark a response as a (possibly failed) tool-call attempt."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays accepted in a call's arguments (``{"a": [1]}`` is 2 deep)
and in a task record's fields. Real tool arguments are 1 to 3 deep; a deeper call is a format error,
so nothing downstream (the sandbox, chat templates, loggers) ever recurses through agent-made nesting."""
MAX_ARGUMENTS_LENGTH = 2**18
"""Characters of one call's arguments written as JSON (as long as the action space); a longer call
is a format error instead of megabytes sent to a tool and kept in the conversation."""
MAX_NAME_LENGTH = 256
"""Characters of a tool name (OpenAI allows 64); a longer name is a format error, and a longer
``tool_calls`` id is replaced by a generated one."""

_OPEN_TAG, _CLOSE_TAG = "<tool_call>", "</tool_call>"
_ENTRY_SHAPE = "{'function': {'name', 'arguments'}}"
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
    end = len(text)  # markers are cut by moving this index, so a flood of them costs linear time
    while True:
        marker = next((m for m in END_MARKERS if text.endswith(m, 0, end)), None)
        if marker is None:
            return text[:end]
        end -= len(marker)
        while end and text[end - 1].isspace():
            end -= 1


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

    Every parsed call has a plain ``str`` name of at most :data:`MAX_NAME_LENGTH` characters and
    arguments made of plain JSON values (``dict``, ``list``, ``str``, numbers, None), nested at most
    :data:`MAX_JSON_DEPTH` deep and at most :data:`MAX_ARGUMENTS_LENGTH` characters as JSON; a call
    that is not is skipped with an error. Parsing time grows linearly with the action's length.

    Args:
        action: Raw response text, or an OpenAI assistant message dict (``content`` and optional
            ``tool_calls``, a list). Anything else is treated as an empty response with one error; an
            object whose own methods raise while it is read (a mapping whose ``get`` raises, a
            ``tool_calls`` whose ``len`` raises, ...) is one format error.
        id_prefix: Prefix of generated call ids (``<prefix>_<i>``).

    Returns:
        The parsed response; calls that do not parse are listed in ``errors``.
    """
    try:
        return _parse_action(action, id_prefix)
    except Exception as exc:  # noqa: BLE001 - a hostile object's methods may raise anything
        return _unreadable(action, exc, id_prefix)


def _parse_action(action: Any, id_prefix: str) -> ParsedResponse:
    if isinstance(action, Mapping):
        return _parse_message(action, id_prefix)
    if isinstance(action, (bytes, bytearray)):
        action = bytes(action).decode("utf-8", errors="replace")
    if not isinstance(action, str):
        error = f"the action is {type(action).__name__}, not response text or an assistant message"
        return _build("", None, "", [], [error], False, id_prefix, "")
    return _parse_text(str.__str__(action), id_prefix)


def _parse_text(action: str, id_prefix: str) -> ParsedResponse:
    """Parse response text (a plain ``str``, so no method of a subclass ever runs)."""
    text = strip_end_markers(action)
    reasoning, content = split_reasoning(text)
    calls, errors, leftover = _parse_text_calls(content)
    has_syntax = any(tag in content for tag in TOOL_CALL_TAGS)
    message_content = (text[: len(text) - len(content)] + leftover).strip()
    return _build(text, reasoning, content, calls, errors, has_syntax, id_prefix, message_content)


def _unreadable(action: Any, exc: Exception, id_prefix: str) -> ParsedResponse:
    """The response for an action whose own methods raised while it was read: one format error."""
    try:
        what = f"{type(exc).__name__} raised while reading a {type(action).__name__}"
        is_message = isinstance(action, Mapping)
    except Exception:  # noqa: BLE001 - even the type name may be hostile
        what, is_message = "an exception was raised while reading it", True
    error = (f"the action could not be read ({what}); send response text or an assistant message "
             "made of plain dicts, lists and strings")
    return _build("", None, "", [], [error], is_message, id_prefix, "")


class _RawCall(NamedTuple):
    """A call that parsed, before ids are assigned."""

    given_id: str | None
    name: str
    arguments: dict[str, Any]
    encoded: str
    """``arguments`` as JSON text (what the OpenAI message stores)."""


def _hermes_blocks(content: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, body)`` of each ``<tool_call>…</tool_call>`` block, left to right.

    The same blocks as a lazy regular expression finds, but in linear time: once an opening tag has
    no closing tag after it, no later one has either, so thousands of unclosed tags are scanned once.
    """
    pos = 0
    while True:
        start = content.find(_OPEN_TAG, pos)
        if start < 0:
            return
        close = content.find(_CLOSE_TAG, start + len(_OPEN_TAG))
        if close < 0:
            return
        pos = close + len(_CLOSE_TAG)
        yield start, pos, content[start + len(_OPEN_TAG):close]


def _parse_text_calls(content: str) -> tuple[list[_RawCall], list[str], str]:
    """Find Hermes blocks, or else Llama python-tag JSON; return calls, errors and leftover text."""
    calls: list[_RawCall] = []
    errors: list[str] = []
    if _OPEN_TAG in content or _CLOSE_TAG in content:
        kept, last = [], 0
        for i, (start, end, body) in enumerate(_hermes_blocks(content), start=1):
            call, error = _call_from_json_text(body, "arguments")
            if call is None:
                errors.append(f"<tool_call> block {i}: {error}")
                continue
            calls.append(call)
            kept.append(content[last:start])
            last = end
        kept.append(content[last:])
        if not calls and not errors:
            errors.append("a <tool_call> tag without its matching closing or opening tag")
        return calls, errors, "".join(kept).strip()
    tag = content.find(_PYTHON_TAG)
    if tag >= 0:
        calls, errors = _parse_python_tag(content[tag + len(_PYTHON_TAG):])
        return calls, errors, content[:tag].strip()
    return calls, errors, content


def _parse_python_tag(rest: str) -> tuple[list[_RawCall], list[str]]:
    """Parse Llama-3.1 JSON calls after ``<|python_tag|>``, separated by whitespace or ``;``."""
    for stop in _LLAMA_STOP:
        rest = rest.split(stop, 1)[0]
    calls: list[_RawCall] = []
    errors: list[str] = []
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
        if call is None:
            errors.append(f"<|python_tag|> call {index}: {error}")
        else:
            calls.append(call)
    if not calls and not errors:
        errors.append("<|python_tag|> is not followed by a JSON call")
    return calls, errors


def _call_from_json_text(body: str, args_key: str) -> tuple[_RawCall | None, str]:
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


def _call_from_object(obj: Any, args_key: str) -> tuple[_RawCall | None, str]:
    """Turn ``{"name", args_key}`` into a call, or explain why not (the call is then None)."""
    if not isinstance(obj, dict):
        return None, f"the call must be a JSON object with a 'name', got {type(obj).__name__}"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, "the call has no string 'name'"
    name = str.__str__(name)
    if len(name) > MAX_NAME_LENGTH:
        return None, f"the tool name is {len(name)} characters long; a name has at most {MAX_NAME_LENGTH}"
    raw = obj.get(args_key, obj.get("arguments"))
    arguments, encoded, error = _decode_arguments(raw)
    if arguments is None:
        return None, f"call of {name!r}: {error}"
    return _RawCall(None, name, arguments, encoded), ""


def _decode_arguments(raw: Any) -> tuple[dict[str, Any] | None, str, str]:
    """Arguments may be an object, a JSON string of an object, or absent.

    Returns:
        ``(arguments, their JSON text, "")`` with plain JSON values, or ``(None, "", why not)``.
    """
    if raw is None:
        return {}, "{}", ""
    decoded = False
    if isinstance(raw, str):
        raw = str.__str__(raw)
        if len(raw) > MAX_ARGUMENTS_LENGTH:
            return None, "", f"arguments are {len(raw)} characters of JSON, more than {MAX_ARGUMENTS_LENGTH}"
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError) as exc:
            return None, "", f"arguments are a string but not valid JSON ({_json_problem(exc)})"
        decoded = True
    if not isinstance(raw, dict):
        return None, "", f"arguments must be a JSON object, got {type(raw).__name__}"
    depth, items = json_extent(raw, MAX_JSON_DEPTH, MAX_ARGUMENTS_LENGTH // 2)
    if depth > MAX_JSON_DEPTH:
        return None, "", f"arguments are nested more than {MAX_JSON_DEPTH} levels deep"
    if items > MAX_ARGUMENTS_LENGTH // 2:  # each takes 2 characters or more: checked before encoding them
        return None, "", (f"arguments hold more than {MAX_ARGUMENTS_LENGTH // 2} values, so more than "
                          f"{MAX_ARGUMENTS_LENGTH} characters of JSON")
    try:
        encoded = _ENCODER.encode(raw)
    except Exception as exc:  # noqa: BLE001 - objects of a message action may raise anything
        return None, "", f"arguments are not JSON-serialisable ({type(exc).__name__})"
    if len(encoded) > MAX_ARGUMENTS_LENGTH:
        return None, "", f"arguments are {len(encoded)} characters of JSON, more than {MAX_ARGUMENTS_LENGTH}"
    # a message action's objects may be subclasses with methods of their own: keep plain copies
    return (raw if decoded else json.loads(encoded)), encoded, ""


def json_extent(value: Any, max_depth: int = MAX_JSON_DEPTH, max_items: int = 2**62) -> tuple[int, int]:
    """Nesting depth and number of elements of a JSON-like value, counted level by level without
    recursion, and stopping as soon as either passes its maximum.

    A value that refers to itself is deeper than any maximum, and one that shares a list many times
    over (``a = [a, a]`` sixty times) has more elements than any maximum: the count stops either way,
    where ``json.dumps`` would recurse past the stack or run for ever.

    Args:
        value: Dicts, lists and tuples of anything; scalars are 0 deep, ``{}`` and ``[1]`` 1 deep.
        max_depth: Stop once the value is known to be deeper than this.
        max_items: Stop once more elements than this (list items and dict values, at any depth) are seen.

    Returns:
        ``(depth, items)``; ``depth`` is ``max_depth + 1`` when the value is deeper than ``max_depth``,
        and ``items`` passes ``max_items`` when there are more; the other number is then a lower bound.
    """
    containers = (dict, list, tuple)
    level = [value] if isinstance(value, containers) else []
    depth = items = 0
    while level:
        if depth == max_depth:
            return max_depth + 1, items
        depth += 1
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            items += len(children)
            if items > max_items:
                return depth, items
            below += [child for child in children if isinstance(child, containers)]
        level = below
    return depth, items


def _given_id(value: Any) -> str | None:
    """A ``tool_calls`` entry's own id when it is a usable string, else None (an id is generated)."""
    if not isinstance(value, str):
        return None
    value = str.__str__(value)
    return value if 0 < len(value) <= MAX_NAME_LENGTH else None


def _parse_message(message: Mapping[str, Any], id_prefix: str) -> ParsedResponse:
    """Parse an OpenAI assistant message; without ``tool_calls`` its content is parsed as text."""
    raw_text = content_text(message.get("content"))
    entries = message.get("tool_calls")
    if entries is None or (isinstance(entries, (list, tuple)) and len(entries) == 0):
        return _parse_text(raw_text, id_prefix)
    text = strip_end_markers(raw_text)
    reasoning, content = split_reasoning(text)
    if not isinstance(entries, (list, tuple)):
        error = f"tool_calls must be a list of {_ENTRY_SHAPE} entries, got {type(entries).__name__}"
        return _build(text, reasoning, content, [], [error], True, id_prefix, text)
    calls, errors = [], []
    for i, entry in enumerate(entries):
        function = entry.get("function") if isinstance(entry, Mapping) else None
        if not isinstance(function, Mapping):
            errors.append(f"tool_calls[{i}]: expected {_ENTRY_SHAPE}")
            continue
        call, error = _call_from_object(dict(function), "arguments")
        if call is None:
            errors.append(f"tool_calls[{i}]: {error}")
            continue
        calls.append(call._replace(given_id=_given_id(entry.get("id"))))
    return _build(text, reasoning, content, calls, errors, True, id_prefix, text)


def _build(
    text: str,
    reasoning: str | None,
    content: str,
    raw_calls: list[_RawCall],
    errors: list[str],
    has_syntax: bool,
    id_prefix: str,
    message_content: str,
) -> ParsedResponse:
    """Assign call ids and assemble the OpenAI assistant message."""
    calls = tuple(
        ParsedCall(raw.given_id or f"{id_prefix}_{i}", raw.name, raw.arguments)
        for i, raw in enumerate(raw_calls)
    )
    message: dict[str, Any] = {"role": "assistant", "content": message_content}
    if calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": raw.encoded}}
            for call, raw in zip(calls, raw_calls)
        ]
    return ParsedResponse(text, reasoning, content, calls, tuple(errors), has_syntax, message)
