"""A tool's return value turned into the text the agent reads (inside the worker, under the deadline)."""

from __future__ import annotations

import json
from typing import Any

TRUNCATION_MARKER = "\n...[truncated {omitted} bytes of tool output]"
"""Appended to a result text cut at the output limit; ``{omitted}`` is the number of bytes dropped."""

_KINDS = {str: b"S", int: b"I", float: b"F", bool: b"B", type(None): b"N"}


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes plus a marker.

    Returns:
        The text, and whether it was cut.
    """
    if len(text) * 4 <= limit:
        return text, False
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, False
    kept = data[:limit].decode("utf-8", "ignore")
    return kept + TRUNCATION_MARKER.format(omitted=len(data) - limit), True


def render(value: Any, limit: int) -> tuple[bytes, str]:
    """The agent-facing text of a return value, and the kind of value the parent rebuilds from it.

    The text follows the reference: ``json.dumps(value)`` (default settings) for a dict or list,
    ``str(value)`` otherwise. Kinds are those of :func:`ftrl_gym.sandbox.protocol.decode_reply`.

    Raises:
        Exception: whatever ``json.dumps`` or ``__str__`` raise for the value.
    """
    if isinstance(value, (dict, list)):
        text, cut = truncate(json.dumps(value), limit)
        return (b"U" if cut else b"J"), text
    kind = type(value)
    text, cut = truncate(value if kind is str else str(value), limit)
    return (b"U" if cut else _KINDS.get(kind, b"S")), text
