"""verifiers (v1): any FTRL id as a verifiers taskset and env whose rewards come from ``ToolUseEnv.step``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import verifiers.v1 as vf

from ftrl_gym.integrations.episodes import builtin_tasks, episode_env
from ftrl_gym.integrations.prompts import with_tools_system_message

TASKSET_ID = "ftrl_gym_verifiers"
"""The verifiers taskset id (an importable module name: this module is aliased to it on import)."""
REWARD_NAME = "solve_f1"
"""The trace reward holding the episode's return (the sum of the env's turn rewards)."""


class FTRLData(vf.TaskData):
    """One FTRL task as verifiers task data: the prompt, and which task of which id it is."""

    env_id: str
    """The built-in FTRL id."""
    split: str
    """Its split."""
    task_index: int
    """Index of the task in the id's tasks."""


class FTRLTask(vf.Task[FTRLData]):
    """An FTRL task; :class:`FTRLEnv` plays it and records its reward from the env's steps."""


class FTRLTasksetConfig(vf.TasksetConfig):
    """Which FTRL tasks to load and how their episodes run (``--env.taskset.*``)."""

    env_id: str = "FTRL-MultiHop-v0"
    """A built-in FTRL id."""
    split: str = "test"
    """``train`` or ``test``."""
    num_tasks: int | None = None
    """Keep only the first ``num_tasks`` tasks (None: all)."""
    max_turns: int = 20
    """Assistant turns before the episode is truncated."""
    reward: str = "solve_f1"
    """Reward variant: ``solve_f1``, ``solve_p``, ``solve_r`` or ``solve_pr``."""


class FTRLTaskset(vf.Taskset[FTRLTask, FTRLTasksetConfig]):
    """The tasks of an FTRL id; each prompt carries the task's tools in the Hermes system message."""

    def load(self) -> Iterator[FTRLTask]:
        """Yield one task per FTRL task (the first ``num_tasks``)."""
        config = self.config
        tasks = builtin_tasks(config.env_id, config.split)[: config.num_tasks]
        for index, task in enumerate(tasks):
            system, *messages = with_tools_system_message(
                [dict(m) for m in task.messages], task.tools
            )
            data = FTRLData(
                idx=index,
                id=f"{config.env_id}/{config.split}/{index}",
                system_prompt=system["content"],
                prompt=messages,
                env_id=config.env_id,
                split=config.split,
                task_index=index,
            )
            yield FTRLTask(data, config.task)


class FTRLEnvConfig(vf.EnvConfig):
    """:class:`FTRLEnv`'s config: one ``agent`` seat, a plain chat loop on the local machine."""

    agent: vf.AgentConfig = vf.AgentConfig(harness={"id": "null"}, runtime=vf.SubprocessConfig())
    """The policy under evaluation or training (``--env.agent.*``)."""


class FTRLEnv(vf.Env[FTRLEnvConfig]):
    """Plays an FTRL episode: each model reply is one ``ToolUseEnv.step``; its tool results are the next user turn.

    The tools run in ftrl-gym's sandbox, once per call, inside ``ToolUseEnv.step``, which also scores
    the turn (SPEC 3). The trace gets the reward ``solve_f1`` (the episode return, the sum of the
    turn rewards) and the metrics ``turn_rewards_<i>``, ``solve_p``, ``solve_r``, ``solve_f1_episode``
    and ``calls``. The episode ends when the env ends it (a turn without a call, or ``max_turns``) or
    the agent's run ends.
    """

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        """Play one episode of ``task`` with the ``agent`` seat."""
        data = task.data
        config = self.config.taskset
        env = episode_env(
            builtin_tasks(data.env_id, data.split)[data.task_index],
            max_turns=config.max_turns,
            reward=config.reward,
        )
        try:
            env.reset(options={"task_index": 0})
            async with agents.agent.interaction(task) as chat:
                rewards, info = await _play(chat, env)
                _record(chat.trace, rewards, info)
        finally:
            env.close()


async def _play(chat: Any, env: Any) -> tuple[list[float], dict[str, Any]]:
    """Alternate model turns and env steps until either side ends the episode."""
    rewards: list[float] = []
    info: dict[str, Any] = {}
    segment = await chat.turn()
    while not segment.terminated:
        _, reward, terminated, truncated, info = env.step(assistant_action(segment.messages))
        rewards.append(float(reward))
        if terminated or truncated:
            break
        segment = await chat.turn(_observation_text(info))
    return rewards, info


def _observation_text(info: dict[str, Any]) -> str:
    """The tool results of the last step as ``<tool_response>`` blocks (the env's observation)."""
    from ftrl_gym.envs.rendering import tool_response_block

    return "\n".join(tool_response_block(result["text"]) for result in info["tool_results"])


def _record(trace: Any, rewards: list[float], info: dict[str, Any]) -> None:
    trace.record_reward(REWARD_NAME, sum(rewards))
    for turn, reward in enumerate(rewards):
        trace.record_metric(f"turn_reward_{turn}", reward)
    metrics = info.get("metrics") or {}
    for key in ("solve_p", "solve_r", "calls", "solved"):
        if key in metrics:
            trace.record_metric(key, float(metrics[key]))
    if "solve_f1" in metrics:
        trace.record_metric("solve_f1_episode", float(metrics["solve_f1"]))


def assistant_action(messages: list[Any]) -> dict[str, Any]:
    """The segment's last assistant message as the action ``ToolUseEnv.step`` takes.

    Args:
        messages: A segment's typed messages.

    Returns:
        ``{"role": "assistant", "content", "tool_calls"}`` (native calls kept; Hermes text calls stay
        in the content for the env to parse). An empty reply when the segment has no assistant message.
    """
    for message in reversed(messages):
        if isinstance(message, vf.AssistantMessage):
            calls = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls or []
            ]
            return {"role": "assistant", "content": message.content or "", "tool_calls": calls}
    return {"role": "assistant", "content": ""}


def load_environment(
    env_id: str = "FTRL-MultiHop-v0",
    split: str = "test",
    num_tasks: int | None = None,
    max_turns: int = 20,
    reward: str = "solve_f1",
    **agent: Any,
) -> vf.Env:
    """A verifiers environment over an FTRL id, built by verifiers' own loader.

    Args:
        env_id: A built-in FTRL id.
        split: ``train`` or ``test``.
        num_tasks: Keep only the first ``num_tasks`` tasks.
        max_turns: Assistant turns per episode.
        reward: The reward variant.
        **agent: ``AgentConfig`` fields of the ``agent`` seat (``harness``, ``runtime``, ``max_turns``, ...).

    Returns:
        An :class:`FTRLEnv` (``vf.Env``) whose taskset is :class:`FTRLTaskset`.
    """
    taskset = {
        "id": TASKSET_ID,
        "env_id": env_id,
        "split": split,
        "num_tasks": num_tasks,
        "max_turns": max_turns,
        "reward": reward,
    }
    config = vf.resolve_env_config({"taskset": taskset, **({"agent": agent} if agent else {})})
    return vf.load_environment(config)


def main(argv: list[str] | None = None) -> None:
    """verifiers' eval CLI with this module importable as the taskset ``ftrl_gym_verifiers``.

    Args:
        argv: ``vf-eval`` arguments (default: the command line).
    """
    from verifiers.v1.cli.eval.main import main as eval_main

    eval_main(argv)


__all__ = ["FTRLEnv", "FTRLTaskset", "load_environment"]

if __name__ == "__main__":
    # Run as __main__, this file is a second copy: the importable one registers the taskset id.
    from ftrl_gym.integrations import verifiers as _module  # noqa: PLW0406

    _module.main()
else:
    sys.modules.setdefault(TASKSET_ID, sys.modules[__name__])
