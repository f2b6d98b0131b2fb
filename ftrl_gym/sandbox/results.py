"""A tool's return value turned into the bytes the agent reads (inside the episode process, under the
deadline): an exact ``str``, valid UTF-8, cut to the byte budget before it is sent."""

from __future__ import annotations

import json
import re
from typing import Any

TRUNCATION_MARKER = "\n...[truncated {omitted} bytes of tool output]"
"""Appended to a result text cut at the output limit; ``{omitted}`` is the number of bytes dropped."""

MAX_JSON_DEPTH = 256
"""Deepest dict/list result whose value the host rebuilds; deeper results keep their text only. The host's
decoder (``protocol.decode_reply``) accepts at least this depth, so a valid reply is never a crash."""

_KINDS = {str: b"S", int: b"I", float: b"F", bool: b"B", type(None): b"N"}
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(text: str) -> int:
    """Nesting depth of a JSON document (brackets inside strings do not count)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def exact_text(text: str) -> str:
    """``text`` as an exact ``str`` built by the interpreter, never by a tool-made subclass's methods."""
    return text if type(text) is str else "".join((text,))


def truncate(text: str, limit: int) -> tuple[bytes, bool]:
    """UTF-8 bytes of ``text`` (lone surrogates replaced by ``?``), cut to ``limit`` bytes plus a marker.

    Returns:
        The bytes, and whether they were cut.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data, False
    kept = data[:limit].decode("utf-8", "ignore").encode("utf-8")
    return kept + TRUNCATION_MARKER.format(omitted=len(data) - len(kept)).encode(), True


def render(value: Any, limit: int) -> tuple[bytes, bytes]:
    """The agent-facing text of a return value, and the kind of value the host rebuilds from it.

    The text follows the reference: ``json.dumps(value)`` (default settings) for a dict or list,
    ``str(value)`` otherwise. Kinds are those of :func:`ftrl_gym.sandbox.protocol.decode_reply`; ``U``
    means the host keeps the text only (cut, or nested deeper than :data:`MAX_JSON_DEPTH`).

    Raises:
        Exception: whatever ``json.dumps`` or ``__str__`` raise for the value.
    """
    if isinstance(value, (dict, list)):
        text = exact_text(json.dumps(value))
        data, cut = truncate(text, limit)
        deep = text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth(text) > MAX_JSON_DEPTH
        return (b"U" if cut or deep else b"J"), data
    kind = type(value)
    data, cut = truncate(exact_text(value if kind is str else str(value)), limit)
    return (b"U" if cut else _KINDS.get(kind, b"S")), data
