"""The LLM backend's five stage prompts and the shapes their JSON answers must have."""

from __future__ import annotations

import json
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

SHAPES: dict[str, dict[str, Any]] = {
    "scene": {
        "question": str,
        "final_answer": str,
        "sub_problems": [{"id": str, "description": str, "depends_on": [str], "answer": str}],
    },
    "documents": {
        "tools": [{"sub_problem": str, "name": str, "description": str, "parameters": dict}]
    },
    "integration": {
        "tools": [{"name": str, "description": str, "parameters": dict}],
        "assignment": dict,
    },
    "scaling": {
        "tools": [{"name": str, "description": str, "parameters": dict}],
        "distractors": [{"name": str, "description": str, "parameters": dict}],
    },
    "deployment": {
        "codes": dict,
        "solution": [[{"name": str, "arguments": dict}]],
        "unsolved_set": dict,
        "distractor_probes": [{"name": str, "arguments": dict}],
    },
}
"""Stage name → the shape its answer must have: a dict of required keys, ``[item]`` lists, or a type."""


class BadOutput(ValueError):
    """A model answer that cannot be used; ``reason`` is the rejection reason counted in the summary."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_shape(value: Any, shape: Any, where: str = "$") -> None:
    """Check a decoded answer against a shape.

    Raises:
        BadOutput: ``missing_field`` when a required key is absent, ``wrong_type`` when a value has
            the wrong type; the detail names the JSON path.
    """
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise BadOutput("wrong_type", f"{where} must be an object")
        for key, inner in shape.items():
            if key not in value:
                raise BadOutput("missing_field", f"{where}.{key} is missing")
            check_shape(value[key], inner, f"{where}.{key}")
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise BadOutput("wrong_type", f"{where} must be a list")
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{where}[{i}]")
    elif not isinstance(value, shape):
        raise BadOutput(
            "wrong_type", f"{where} must be {shape.__name__}, got {type(value).__name__}"
        )


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
