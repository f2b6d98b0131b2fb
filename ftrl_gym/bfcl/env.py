"""``FTRL-BFCL-v0``: BFCL's single-turn tasks as task records scored by BFCL's AST checker."""

from __future__ import annotations

import json
from typing import Any

from ftrl_gym.bfcl import source
from ftrl_gym.envs.tool_use_env import ToolUseEnv
from ftrl_gym.errors import EnvConfigError
from ftrl_gym.tasks import TaskRecord, load_tasks


def bfcl_records(category: str) -> list[dict[str, Any]]:
    """A category's tasks as task records: BFCL's opening messages, its tools as sent to
    function-calling models, no code, and a ``bfcl_ast`` scorer.

    Args:
        category: One of :data:`~ftrl_gym.bfcl.source.SINGLE_TURN_CATEGORIES`.

    Returns:
        One record per BFCL task, in BFCL's order; ``id`` is BFCL's id.
    """
    return [
        {
            "id": entry["id"],
            "messages": [dict(message) for message in entry["question"][0]],
            "tools": source.tools_as_sent(entry["function"]),
            "codes": {},
            "unsolved_set": {},
            "scorer": {"kind": "bfcl_ast", "category": category, "id": entry["id"]},
            "solution": gold_solution(category, entry["id"]),
            "data_source": f"bfcl:{category}",
            "split": "test",
        }
        for entry in source.prompts(category, with_hints=True)
    ]


def gold_solution(category: str, task_id: str) -> list[list[dict[str, Any]]]:
    """One turn of calls with the first acceptable value of every argument BFCL's possible answer
    requires (Java and JavaScript values as source text, as a function-calling model sends them);
    no turn for an irrelevance task. BFCL's checker accepts it on all but a few tasks (docs/envs.md)."""
    answer = source.possible_answers(category)[task_id]
    if not answer:
        return []
    as_text = category in ("simple_java", "simple_javascript")
    calls = []
    for item in answer:
        name, params = next(iter(item.items()))
        arguments = {}
        for key, options in params.items():
            chosen = [option for option in options if option != ""]
            if chosen:
                value = _first_values(chosen[0])
                arguments[key] = _source_text(value) if as_text else value
        calls.append({"name": source.sent_name(name), "arguments": arguments})
    return [calls]


def _first_values(value: Any) -> Any:
    """A concrete value from an acceptable one: BFCL's dicts list acceptable values per key."""
    if isinstance(value, dict):
        out = {}
        for key, options in value.items():
            chosen = [o for o in options if o != ""] if isinstance(options, list) else [options]
            if chosen:
                out[key] = _first_values(chosen[0])
        return out
    if isinstance(value, list):
        return [_first_values(v) for v in value]
    return value


def _source_text(value: Any) -> str:
    """A Java or JavaScript argument as source text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value if isinstance(value, str) else json.dumps(value)


def bfcl_tasks(category: str) -> list[TaskRecord]:
    """The validated task records of a category (see :func:`bfcl_records`)."""
    return load_tasks(bfcl_records(category))


MULTI_TURN_MAX_TURNS = 100
"""Default assistant turns per multi-turn episode (BFCL allows 20 steps per user turn; the gold play
takes two per user turn, its calls and the text that ends it, and the tasks have at most 7 user turns)."""


MULTI_TURN_MAX_CALLS_PER_TURN = 64
"""Default ``max_calls_per_turn`` of the multi-turn envs. BFCL caps steps, not calls; its longest gold
turn makes 34 calls (``multi_turn_long_context_46``: 32 ``rm``, then ``cd`` and ``rmdir``), over the
generated envs' 16."""


def make_bfcl_env(category: str | None = None, *, max_turns: int | None = None, split: str = "test",
                  **kwargs: Any) -> ToolUseEnv:
    """Build the env of one BFCL category (the entry point of ``FTRL-BFCL-v0``).

    Args:
        category: One of :data:`~ftrl_gym.bfcl.source.CATEGORIES`.
        max_turns: Assistant turns per episode; by default 1 for the single-turn categories (BFCL
            scores one response) and :data:`MULTI_TURN_MAX_TURNS` for the multi-turn ones, whose
            ``max_calls_per_turn`` defaults to :data:`MULTI_TURN_MAX_CALLS_PER_TURN`.
        split: ``"test"``, BFCL's only split (accepted so that code passing ``split=`` works).
        **kwargs: Any other keyword argument of :class:`~ftrl_gym.envs.tool_use_env.ToolUseEnv`.

    Returns:
        The env; ``reset(options={"task_id": "simple_python_0"})`` selects a task by BFCL's id.

    Raises:
        EnvConfigError: bfcl-eval is missing (``pip install 'ftrl-gym[bfcl]'``) or the category is unknown.
    """
    source.require_bfcl()
    if split != "test":
        raise EnvConfigError(f"BFCL has one split, 'test'; got split={split!r}")
    category = source.check_category(category)
    if category in source.MULTI_TURN_CATEGORIES:
        from ftrl_gym.bfcl.multi_turn import multi_turn_records

        records = multi_turn_records(category)
        kwargs.setdefault("max_calls_per_turn", MULTI_TURN_MAX_CALLS_PER_TURN)
        return ToolUseEnv(load_tasks(records), max_turns=MULTI_TURN_MAX_TURNS if max_turns is None else max_turns,
                          **kwargs)
    source.load_checker()  # imported now (seconds), not in the first step
    return ToolUseEnv(bfcl_tasks(category), max_turns=1 if max_turns is None else max_turns, **kwargs)
