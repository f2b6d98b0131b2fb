"""OpenAI function schemas as Python methods with type hints and Google docstrings (what TRL reads)."""

from __future__ import annotations

import inspect
import json
import keyword
from collections.abc import Awaitable, Callable
from functools import reduce
from operator import or_
from typing import Any

_JSON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}
RESERVED_NAMES = frozenset({"reset", "get_reward"})
"""Method names TRL gives a meaning of its own; a tool of that name cannot become a method."""


def python_type(spec: dict[str, Any]) -> Any:
    """The type hint whose JSON schema (``transformers.utils.get_json_schema``) has the same ``type``.

    Args:
        spec: One property of a function's ``parameters`` schema.

    Returns:
        A type, or a union of types for ``"type": [...]``; ``str`` when the schema names no known type.
    """
    names = spec.get("type", "string")
    names = names if isinstance(names, list) else [names]
    types = [_JSON_TYPES[name] for name in names if name in _JSON_TYPES] or [str]
    return reduce(or_, types)


def _one_line(text: Any) -> str:
    return " ".join(str(text or "").split())


def method_docstring(function: dict[str, Any]) -> str:
    """A Google docstring that ``get_json_schema`` parses back into the schema's descriptions.

    Args:
        function: The ``"function"`` part of an OpenAI tool schema.

    Returns:
        The docstring; enums are written as ``(choices: [...])``, which ``get_json_schema`` reads.
    """
    lines = [_one_line(function.get("description")) or function["name"]]
    properties = (function.get("parameters") or {}).get("properties") or {}
    if properties:
        lines += ["", "Args:"]
        for name, spec in properties.items():
            text = _one_line(spec.get("description")) or name
            if spec.get("enum"):
                text += f" (choices: {json.dumps(spec['enum'])})"
            lines.append(f"    {name}: {text}")
    return "\n".join(lines)


def tool_method(
    tool: dict[str, Any], run: Callable[[Any, str, dict[str, Any]], Awaitable[str]]
) -> Callable[..., Awaitable[str]]:
    """Turn one tool schema into a coroutine method whose signature and docstring describe it.

    The method accepts keyword arguments only and returns ``await run(self, tool_name, arguments)``;
    its ``__signature__``, annotations and docstring make ``get_json_schema`` rebuild the tool's schema
    (names, types, required parameters, descriptions, enums). TRL runs coroutine tools of one
    assistant turn together with ``asyncio.gather``, which lets the environment step the turn as one.

    Args:
        tool: An OpenAI function-tool schema.
        run: Executes a call for the instance the method is bound to.

    Returns:
        A function to set as a class attribute.

    Raises:
        ValueError: The tool or a parameter name is not a Python identifier, or is reserved by TRL.
    """
    function = tool["function"]
    name = function["name"]
    if (
        not name.isidentifier()
        or keyword.iskeyword(name)
        or name.startswith("_")
        or name in RESERVED_NAMES
    ):
        raise ValueError(
            f"tool name {name!r} cannot be a TRL environment method (not a public Python identifier)"
        )
    parameters = function.get("parameters") or {}
    required = set(parameters.get("required") or ())
    signature = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    for param, spec in (parameters.get("properties") or {}).items():
        if not param.isidentifier() or keyword.iskeyword(param):
            raise ValueError(f"parameter {param!r} of tool {name!r} is not a Python identifier")
        annotations[param] = python_type(spec)
        default = inspect.Parameter.empty if param in required else spec.get("default")
        signature.append(
            inspect.Parameter(
                param,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=annotations[param],
            )
        )

    async def method(self: Any, **arguments: Any) -> str:
        return await run(self, name, arguments)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = method_docstring(function)
    method.__annotations__ = {**annotations, "return": str}
    method.__signature__ = inspect.Signature(signature, return_annotation=str)  # type: ignore[attr-defined]
    return method
