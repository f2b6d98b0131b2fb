"""SkyRL-gym: FTRL tasks as a ``skyrl_gym`` ``BaseTextEnv``, each turn scored by ``ToolUseEnv.step``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import skyrl_gym
from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

from ftrl_gym.integrations.episodes import (
    EPISODE_KEYWORDS,
    builtin_tasks,
    episode_env,
    resolve_task,
)
from ftrl_gym.integrations.prompts import with_tools_system_message
from ftrl_gym.tasks import TaskRecord

SKYRL_ENV_CLASS = "ftrl"
"""The id :func:`register_skyrl_env` registers in ``skyrl_gym`` (a dataset row's ``env_class``)."""
DEFAULT_ENV_ID = "FTRL-MultiHop-v0"


class FTRLTextEnv(BaseTextEnv):
    """One FTRL task as a SkyRL-gym text env: the model's text in, tool results and the turn reward out.

    SkyRL builds it as ``skyrl_gym.make("ftrl", env_config=..., extras=row)``. The task comes from
    ``extras``: ``task`` (a SPEC 2 record), or ``env_id`` / ``split`` / ``task_index`` of a built-in
    id (``env_config`` may give ``env_id`` and ``split`` defaults). ``max_turns``, ``reward`` and the
    other turn budgets of ``ToolUseEnv`` come from ``env_config`` or ``extras``.

    Each ``step`` is one ``ToolUseEnv.step`` of the response text: the calls run in the sandbox and
    the turn is scored by SPEC 3 (the turn-level reward SkyRL assigns to that turn). The observation
    is the tool results as one user message of ``<tool_response>`` blocks; ``done`` when the turn had
    no call or the turns ran out. Nothing the model writes raises: a bad call is an error line and
    a reward.
    """

    def __init__(
        self, env_config: Mapping[str, Any] | None = None, extras: Mapping[str, Any] | None = None
    ) -> None:
        """Load the episode's task; the sandbox session opens in ``init``.

        Args:
            env_config: SkyRL's per-env-class settings (``env_id``, ``split``, episode keywords).
            extras: The dataset row's extras (``task`` or ``task_index``, overrides of the above).
        """
        super().__init__()
        settings = {**dict(env_config or {}), **dict(extras or {})}
        self.task: TaskRecord = resolve_task(
            settings.get("env_id") or DEFAULT_ENV_ID,
            settings.get("split") or "train",
            settings.get("task_index"),
            settings.get("task"),
        )
        episode = {key: settings[key] for key in EPISODE_KEYWORDS if settings.get(key) is not None}
        self.env = episode_env(self.task, **episode)
        self.max_turns = self.env.config.max_turns
        self._info: dict[str, Any] = {}

    def init(
        self, prompt: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Start the episode; return the prompt (the row's, or the task's with its tools) and metadata.

        Args:
            prompt: The dataset row's prompt messages; empty or None uses :func:`task_prompt`.

        Returns:
            ``(messages, {"tools": the task's tool schemas})``.
        """
        _, self._info = self.env.reset(options={"task_index": 0})
        self.turns = 0
        messages = [dict(message) for message in prompt] if prompt else task_prompt(self.task)
        return messages, {"tools": self.task.tools}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        """Step one assistant turn through the env.

        Args:
            action: The model's response text (Hermes ``<tool_call>`` blocks, or a final answer).

        Returns:
            ``observations`` (the tool results, empty when done), ``reward`` (SPEC 3), ``done`` and
            ``metadata`` (``tool_calls``, ``tool_results``, ``reward_breakdown``, ``metrics``).
        """
        self.turns += 1
        observation, reward, terminated, truncated, self._info = self.env.step(action)
        done = bool(terminated or truncated)
        metadata = {
            key: self._info[key]
            for key in ("tool_calls", "tool_results", "reward_breakdown", "metrics")
        }
        metadata["truncation_reason"] = self._info["truncation_reason"]
        return BaseTextEnvStepOutput(
            observations=[] if done else [{"role": "user", "content": observation}],
            reward=float(reward),
            done=done,
            metadata=metadata,
        )

    def get_metrics(self) -> dict[str, Any]:
        """The episode's Solve-P/R/F1 and counts so far (``info["metrics"]``), for SkyRL's logs."""
        return dict(self._info.get("metrics", {}))

    def close(self) -> None:
        """Close the episode's sandbox session (the shared sandbox stays up)."""
        self.env.close()


def task_prompt(task: TaskRecord) -> list[dict[str, Any]]:
    """The task's opening messages with its tools in the system message (SkyRL renders no ``tools=``).

    Args:
        task: The task.

    Returns:
        New OpenAI messages.
    """
    return with_tools_system_message([dict(m) for m in task.messages], task.tools)


def register_skyrl_env(env_class: str = SKYRL_ENV_CLASS) -> str:
    """Register :class:`FTRLTextEnv` in ``skyrl_gym``'s registry (again is a no-op).

    Args:
        env_class: The id to register.

    Returns:
        The id, for ``skyrl_gym.make`` and a dataset row's ``env_class``.
    """
    if env_class not in skyrl_gym.registry:
        skyrl_gym.register(id=env_class, entry_point=f"{__name__}:FTRLTextEnv")
    return env_class


def skyrl_dataset_rows(
    env_id: str = DEFAULT_ENV_ID, split: str = "train", env_class: str = SKYRL_ENV_CLASS
) -> list[dict[str, Any]]:
    """Rows in SkyRL's prompt-dataset layout, one per task of ``env_id``.

    Args:
        env_id: A built-in FTRL id.
        split: Its split.
        env_class: The registered SkyRL id.

    Returns:
        ``{"data_source", "prompt", "env_class", "env_id", "split", "task_index"}`` per task.
    """
    return [
        {
            "data_source": f"ftrl_gym/{task.scenario or 'custom'}",
            "prompt": task_prompt(task),
            "env_class": env_class,
            "env_id": env_id,
            "split": split,
            "task_index": index,
        }
        for index, task in enumerate(builtin_tasks(env_id, split))
    ]
