"""``FTRL-BFCL-v0``: BFCL's single-turn tasks as task records scored by BFCL's AST checker."""

from __future__ import annotations

from typing import Any

from ftrl_gym.bfcl import source
from ftrl_gym.envs.tool_use_env import ToolUseEnv
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
            "data_source": f"bfcl:{category}",
            "split": "test",
        }
        for entry in source.prompts(category, with_hints=True)
    ]


def bfcl_tasks(category: str) -> list[TaskRecord]:
    """The validated task records of a category (see :func:`bfcl_records`)."""
    return load_tasks(bfcl_records(category))


def make_bfcl_env(category: str | None = None, *, max_turns: int = 1, **kwargs: Any) -> ToolUseEnv:
    """Build the env of one BFCL category (the entry point of ``FTRL-BFCL-v0``).

    Args:
        category: One of :data:`~ftrl_gym.bfcl.source.SINGLE_TURN_CATEGORIES`.
        max_turns: Assistant turns per episode; BFCL's single-turn categories are one-shot.
        **kwargs: Any other keyword argument of :class:`~ftrl_gym.envs.tool_use_env.ToolUseEnv`.

    Returns:
        The env; ``reset(options={"task_id": "simple_python_0"})`` selects a task by BFCL's id.

    Raises:
        EnvConfigError: bfcl-eval is missing (``pip install 'ftrl-gym[bfcl]'``) or the category is unknown.
    """
    source.require_bfcl()
    source.load_checker()  # imported now (seconds), not in the first step
    return ToolUseEnv(bfcl_tasks(source.check_category(category)), max_turns=max_turns, **kwargs)
