"""One pool of reusable envs per id, shared by evaluation and training (each env owns a sandbox)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from ftrl_gym.envs.registration import CUSTOM_ID


class EnvPool:
    """Reusable envs per id, made on demand with one run's settings.

    Evaluation borrows an env per running episode (:meth:`take`, :meth:`give_back`); training asks
    for a fixed number of distinct envs per id (:meth:`get`). Both kinds are closed by :meth:`close`.

    Args:
        max_turns: Assistant turns before truncation.
        reward: The env's reward variant; None keeps the env's default (Solve-F1).
        split: Dataset split of the built-in ids.
        tasks: JSONL task file for ``FTRL-Custom-v0``.
        env_kwargs: More ``gym.make`` keywords for every env of the pool (e.g. training's
            ``error_call_charge`` and ``duplicate_call_charge``); None adds none.
    """

    def __init__(
        self,
        max_turns: int,
        reward: str | None = None,
        split: str = "train",
        tasks: str = "",
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.kwargs: dict[str, Any] = {**(env_kwargs or {}), "max_turns": max_turns}
        if reward is not None:
            self.kwargs["reward"] = reward
        self.split = split
        self.tasks = tasks
        self._idle: dict[str, list[Any]] = {}
        self._fixed: dict[str, list[Any]] = {}
        self._all: list[Any] = []

    def make(self, env_id: str) -> Any:
        """Build one env of ``env_id`` with the pool's split (or task file) and settings."""
        source = {"tasks": self.tasks} if env_id == CUSTOM_ID else {"split": self.split}
        env = gym.make(env_id, **self.kwargs, **source)
        self._all.append(env)
        return env

    def take(self, env_id: str) -> Any:
        """An idle env of ``env_id``, or a new one; hand it back with :meth:`give_back`."""
        idle = self._idle.setdefault(env_id, [])
        return idle.pop() if idle else self.make(env_id)

    def give_back(self, env_id: str, env: Any) -> None:
        """Return an env whose episode is over."""
        self._idle.setdefault(env_id, []).append(env)

    def get(self, env_id: str, count: int) -> list[Any]:
        """``count`` distinct envs of ``env_id``: the same objects on every call."""
        envs = self._fixed.setdefault(env_id, [])
        while len(envs) < count:
            envs.append(self.make(env_id))
        return envs[:count]

    def num_tasks(self, env_id: str) -> int:
        """Tasks in the env's split (or task file)."""
        return len(self.get(env_id, 1)[0].unwrapped.tasks)

    def close(self) -> None:
        """Close every env (and so every sandbox process) this pool made."""
        for env in self._all:
            env.close()
        self._all.clear()
        self._idle.clear()
        self._fixed.clear()
