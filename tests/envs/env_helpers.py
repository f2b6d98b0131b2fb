"""Helpers of the env tests: the fixture task file and env construction for any id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym

import ftrl_gym  # noqa: F401  (registers the ids)
from ftrl_gym.envs.registration import CUSTOM_ID

FIXTURE = Path(__file__).parent.parent / "data" / "tasks.jsonl"


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` with the fixture tasks for ``FTRL-Custom-v0`` and the committed test split otherwise."""
    kwargs.update(id_kwargs(env_id))
    return gym.make(env_id, **kwargs)


def id_kwargs(env_id: str) -> dict[str, Any]:
    """Keyword arguments that make an id's env without generating the on-demand train split."""
    return {"tasks": str(FIXTURE)} if env_id == CUSTOM_ID else {"split": "test"}


def call_text(calls: list[dict[str, Any]]) -> str:
    """Hermes text for one turn of calls ``{"name", "arguments"}``."""
    return "\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls)
