"""One-task ``ToolUseEnv`` episodes for adapters whose library builds an environment per rollout."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from ftrl_gym.envs.tool_use_env import ToolUseEnv
from ftrl_gym.errors import EnvConfigError
from ftrl_gym.integrations.verl import shared_sandbox
from ftrl_gym.tasks import TaskRecord

EPISODE_KEYWORDS = frozenset(
    {"max_turns", "reward", "turn_timeout", "max_calls_per_turn", "max_output_bytes_per_turn"}
)
"""``ToolUseEnv`` keywords an adapter passes through (the shared sandbox fixes the tool limits)."""


@functools.lru_cache(maxsize=16)
def builtin_tasks(env_id: str, split: str = "train") -> tuple[TaskRecord, ...]:
    """The tasks behind a registered FTRL id, loaded once per process.

    Args:
        env_id: A built-in id such as ``FTRL-MultiHop-v0``.
        split: ``"train"`` or ``"test"``.

    Returns:
        The id's task records, in the env's order (``task_index`` indexes them).
    """
    env = gym.make(env_id, split=split)
    try:
        return tuple(env.unwrapped.tasks)
    finally:
        env.close()


def resolve_task(
    env_id: str,
    split: str,
    task_index: int | None,
    record: TaskRecord | Mapping[str, Any] | None = None,
) -> TaskRecord:
    """The task an adapter's episode plays: a given record, or task ``task_index`` of ``env_id``.

    Args:
        env_id: A built-in FTRL id (unused when ``record`` is given).
        split: Its split.
        task_index: Index into the id's tasks.
        record: A task record (SPEC 2) to play instead.

    Returns:
        The task.

    Raises:
        EnvConfigError: Neither a record nor a valid ``task_index`` was given.
    """
    if record is not None:
        return (
            record if isinstance(record, TaskRecord) else TaskRecord.from_dict(dict(record), "task")
        )
    tasks = builtin_tasks(env_id, split)
    if (
        isinstance(task_index, bool)
        or not isinstance(task_index, numbers.Integral)
        or not 0 <= task_index < len(tasks)
    ):
        raise EnvConfigError(
            f"task_index must be an int in 0..{len(tasks) - 1} for {env_id} ({split}), got {task_index!r}"
        )
    return tasks[int(task_index)]


def episode_env(task: TaskRecord, **kwargs: Any) -> ToolUseEnv:
    """A ``ToolUseEnv`` whose only task is ``task``, on the process's shared sandbox.

    Args:
        task: The task to play (reset with ``options={"task_index": 0}``).
        **kwargs: Keywords of :data:`EPISODE_KEYWORDS`; others are refused.

    Returns:
        The env (closing it closes its session, not the shared sandbox).

    Raises:
        EnvConfigError: An unknown keyword.
    """
    unknown = sorted(set(kwargs) - EPISODE_KEYWORDS)
    if unknown:
        raise EnvConfigError(
            f"unknown episode settings {unknown}; expected some of {sorted(EPISODE_KEYWORDS)}"
        )
    return ToolUseEnv([task], sandbox=shared_sandbox(), **kwargs)
