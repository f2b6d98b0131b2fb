"""Turning a tool's return value into the reply the parent receives (inside the worker, under the deadline)."""

from __future__ import annotations

import json
from typing import Any

TRUNCATION_MARKER = "\n...[truncated {omitted} bytes of tool output]"
"""Appended to a result text cut at the output limit; ``{omitted}`` is the number of bytes dropped."""

_SCALARS = (str, int, float, bool, type(None))


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


def render(value: Any, limit: int) -> tuple[str, Any, bool]:
    """The agent-facing text of a return value, and the JSON-safe value to send with it.

    The text follows the reference: ``json.dumps(value)`` (default settings) for a dict or list,
    ``str(value)`` otherwise.

    Returns:
        ``(text, value, value_is_text_json)``: when the last item is true the parent parses the value
        from the text instead of receiving it twice. A truncated text comes with value None.

    Raises:
        Exception: whatever ``json.dumps`` or ``__str__`` raise for the value.
    """
    if isinstance(value, (dict, list)):
        text, cut = truncate(json.dumps(value), limit)
        return text, None, not cut
    kind = type(value)
    text, cut = truncate(value if kind is str else str(value), limit)
    if cut:
        return text, None, False
    return text, (value if kind in _SCALARS else text), False
