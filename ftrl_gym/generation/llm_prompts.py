"""The LLM backend's five stage prompts and the shapes their JSON answers must have."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DOMAINS: tuple[str, ...] = (
    "geography",
    "people",
    "organisations",
    "products",
    "science",
    "calendars",
    "sports",
    "music",
    "finance",
    "transport",
    "food",
    "weather",
)
"""Domains the LLM backend cycles through, one per candidate."""

SCENARIO_SHAPES: dict[str, str] = {
    "single_hop": "exactly one sub-problem, answered by one tool call",
    "parallel_single_hop": "2 to 4 independent sub-problems (no dependencies between them)",
    "multi_hop": "a chain of 2 to 5 sub-problems, each needing the previous one's answer",
    "parallel_multi_hop": "2 or 3 independent chains of 2 to 3 sub-problems, or two branches joined by a final step",
}

_COMMON = (
    "You build training environments for tool-using language models. Every entity you mention must be "
    "fictional (invented names), so that answers can only come from the tools, never from memory. "
    "Reply with one JSON object and nothing else."
)

STAGES: dict[str, str] = {
    "scene": _COMMON
    + (
        " STAGE 1, scene decomposition. Write a user question for the scenario and domain given, and split it "
        "into sub-problems. Each sub-problem has an id (s1, s2, ...), a description, the ids it depends on, "
        'and its exact short answer (a name, number or date). Shape: {"question": str, "sub_problems": '
        '[{"id": str, "description": str, "depends_on": [str], "answer": str}], "final_answer": str}'
    ),
    "documents": _COMMON
    + (
        " STAGE 2, document generation. Write one OpenAI function schema per sub-problem: a realistic name "
        "(snake_case or camelCase, a verb like get/lookup/fetch/query), a description, typed parameters with "
        'descriptions, and the required list. Shape: {"tools": [{"sub_problem": str, "name": str, '
        '"description": str, "parameters": {"type": "object", "properties": {...}, "required": [...]}}]}'
    ),
    "integration": _COMMON
    + (
        " STAGE 3, function integration. Merge tools whose function overlaps into one tool (add a parameter "
        'that selects the behaviour); keep the others. Shape: {"tools": [same shape as before, without '
        'sub_problem], "assignment": {sub_problem_id: tool_name}}'
    ),
    "scaling": _COMMON
    + (
        " STAGE 4, complexity scaling. Make the tools more realistic: {ops}. Never change what a needed tool "
        'returns for the calls that solve the task. Shape: {"tools": [...], "distractors": [...]} where '
        "distractors are plausible extra tools no sub-problem needs."
    ),
    "deployment": _COMMON
    + (
        " STAGE 5, local deployment. Write a self-contained Python function for every tool and distractor "
        "(standard library only: json, math, re, datetime, collections; embed the data as literals; normalise "
        "inputs; return a helpful error message for unknown inputs). Give the reference solution as assistant "
        "turns of calls, the expected answers per tool, and one plausible call of each distractor. Shape: "
        '{"codes": {tool_name: python_source}, "solution": [[{"name": str, "arguments": {...}}]], '
        '"unsolved_set": {tool_name: [answer]}, "distractor_probes": [{"name": str, "arguments": {...}}]}'
    ),
}
"""Stage name → system prompt."""


@dataclass(frozen=True)
class Text:
    """A string in a shape, with a length bound sent to the server as ``maxLength``.

    The bound steers guided decoding (a small model otherwise repeats itself until ``max_tokens``);
    the shape check accepts any string.
    """

    max_chars: int


@dataclass(frozen=True)
class Parameters:
    """A tool's ``parameters``: the check accepts any object; the schema sent asks for JSON Schema
    properties that each have a ``type`` and a ``description`` (other keys such as ``enum`` or
    ``default`` allowed), and at most 8 ``required`` names."""


SHAPES: dict[str, dict[str, Any]] = {
    "scene": {
        "question": Text(400),
        "final_answer": Text(120),
        "sub_problems": [
            {
                "id": Text(8),
                "description": Text(200),
                "depends_on": [Text(8), 3],
                "answer": Text(120),
            },
            9,
        ],
    },
    "documents": {
        "tools": [
            {
                "sub_problem": Text(8),
                "name": Text(64),
                "description": Text(300),
                "parameters": Parameters(),
            },
            9,
        ]
    },
    "integration": {
        "tools": [{"name": Text(64), "description": Text(300), "parameters": Parameters()}, 9],
        "assignment": {str: Text(64)},
    },
    "scaling": {
        "tools": [{"name": Text(64), "description": Text(300), "parameters": Parameters()}, 9],
        "distractors": [
            {"name": Text(64), "description": Text(300), "parameters": Parameters()},
            3,
        ],
    },
    "deployment": {
        "codes": {str: str},
        "solution": [[{"name": Text(64), "arguments": dict}, 4], 5],
        "unsolved_set": {str: [Text(120), 9]},
        "distractor_probes": [{"name": Text(64), "arguments": dict}, 3],
    },
}
"""Stage name → the shape its answer must have: a dict of required keys, ``{str: shape}`` for a map
with any keys, ``[item]`` or ``[item, n]`` for a list, ``Text(n)`` or ``str`` for a string, or a type.

The bounds ``n`` (``maxItems``, ``maxLength``) go to the server with the schema and steer guided
decoding; the shape check accepts longer values."""

MAX_TOKENS: dict[str, int] = {
    "scene": 512,
    "documents": 1024,
    "integration": 1024,
    "scaling": 1536,
    "deployment": 2048,
}
"""Default ``max_tokens`` per stage: room for a strong model's answer, and at 60 tokens/s each
request is done well within the default 45 s timeout."""


class BadOutput(ValueError):
    """A model answer that cannot be used; ``reason`` is the rejection reason counted in the summary."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _came(value: Any) -> str:
    """Describe a value that came instead of the expected one: its JSON type and a short excerpt."""
    kind = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
    text = json.dumps(value, ensure_ascii=False)
    return f"{kind} {text[:60]}{'...' if len(text) > 60 else ''}"


def check_shape(value: Any, shape: Any, where: str = "$") -> None:
    """Check a decoded answer against a shape.

    Raises:
        BadOutput: ``missing_field`` when a required key is absent (the detail lists the keys that
            came), ``wrong_type`` when a value has the wrong type (the detail shows what came); the
            detail starts with the JSON path.
    """
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise BadOutput("wrong_type", f"{where} must be an object, got {_came(value)}")
        if list(shape) == [str]:
            for key, item in value.items():
                check_shape(item, shape[str], f"{where}.{key}")
            return
        for key, inner in shape.items():
            if key not in value:
                raise BadOutput(
                    "missing_field", f"{where}.{key} is missing; keys were {sorted(value)}"
                )
            check_shape(value[key], inner, f"{where}.{key}")
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise BadOutput("wrong_type", f"{where} must be a list, got {_came(value)}")
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{where}[{i}]")
    elif isinstance(shape, Text):
        check_shape(value, str, where)
    elif isinstance(shape, Parameters):
        check_shape(value, dict, where)
    elif not isinstance(value, shape):
        name = {dict: "an object", str: "a string"}.get(shape, shape.__name__)
        raise BadOutput("wrong_type", f"{where} must be {name}, got {_came(value)}")


def json_schema(shape: Any) -> dict[str, Any]:
    """Return the JSON Schema of a shape, for ``response_format={"type": "json_schema", ...}``.

    Objects list every key as required and allow no others; maps allow any key; ``[item, n]``
    becomes an array with ``maxItems`` n and ``Text(n)`` a string with ``maxLength`` n.
    """
    if isinstance(shape, dict):
        if list(shape) == [str]:
            return {"type": "object", "additionalProperties": json_schema(shape[str])}
        return {
            "type": "object",
            "properties": {key: json_schema(inner) for key, inner in shape.items()},
            "required": list(shape),
            "additionalProperties": False,
        }
    if isinstance(shape, list):
        bound = {"maxItems": shape[1]} if len(shape) > 1 else {}
        return {"type": "array", "items": json_schema(shape[0])} | bound
    if isinstance(shape, Text):
        return {"type": "string", "maxLength": shape.max_chars}
    if isinstance(shape, Parameters):
        described = {"type": Text(16), "description": Text(200)}
        schema = json_schema(
            {"type": Text(8), "properties": {str: described}, "required": [Text(64), 8]}
        )
        schema["properties"]["properties"]["additionalProperties"].pop("additionalProperties")
        return schema
    return {"type": {str: "string", dict: "object", int: "integer", float: "number"}[shape]}


def response_format(stage: str, kind: str) -> dict[str, Any] | None:
    """The ``response_format`` of a stage's request.

    Args:
        stage: A key of :data:`STAGES`.
        kind: ``json_schema`` (the stage's schema, which vLLM and SGLang enforce by guided decoding;
            not ``strict``, since tool parameters are free-form objects), ``json_object`` (any JSON
            object) or ``none``.
    """
    if kind == "json_schema":
        schema = json_schema(SHAPES[stage])
        return {"type": "json_schema", "json_schema": {"name": f"ftrl_{stage}", "schema": schema}}
    return {"type": "json_object"} if kind == "json_object" else None


def parse_json(content: str | None) -> Any:
    """Decode a model answer, tolerating a Markdown code fence around it.

    Raises:
        BadOutput: ``not_json`` when the answer is empty or not a JSON object.
    """
    text = (content or "").strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[-1].rsplit("```", 1)[0]
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadOutput("not_json", f"{exc.msg} at char {exc.pos}: {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise BadOutput("not_json", f"expected a JSON object, got {type(value).__name__}")
    return value


def scaling_ops(rates: dict[str, float]) -> str:
    """Describe the scaling operations the model should apply, with their rates."""
    return (
        "with probability {functional_rate} widen a tool to a broader family of functions; with probability "
        "{parameter_rate} add optional parameters (units, formats) with defaults; with probability {type_rate} "
        "accept ids as int or str and return JSON objects; with probability {distractor_rate} add 1 to "
        "{max_distractors} distractor tools"
    ).format(**rates)


def user_message(stage: str, context: dict[str, Any]) -> str:
    """The user message of a stage: the previous stages' outputs as JSON."""
    return json.dumps({"stage": stage} | context, ensure_ascii=False, sort_keys=True)
