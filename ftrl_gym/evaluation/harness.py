"""Running an agent on many env episodes at once, scoring each with the env and storing it as it ends."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

import ftrl_gym  # noqa: F401  (registers the FTRL ids)
from ftrl_gym.agents.base import agent_name, generate_outputs
from ftrl_gym.envs.pool import EnvPool
from ftrl_gym.envs.registration import CUSTOM_ID
from ftrl_gym.errors import EnvConfigError
from ftrl_gym.evaluation.results import ResultStore, episode_key


@dataclass
class EvalConfig:
    """What to evaluate and how.

    Attributes:
        env_ids: Gymnasium ids to evaluate on, e.g. ``["FTRL-MultiHop-v0"]``.
        split: ``"train"`` or ``"test"`` (built-in ids only).
        tasks: JSONL task file for ``FTRL-Custom-v0`` (required with that id, refused without it).
        episodes: Tasks per env, spread evenly over the env's task list (indices ``i * count //
            episodes``, so a mixed or sorted file is sampled across its scenarios); None for all.
        repeats: Episodes per task; repeats differ only through the agent's own sampling.
        concurrency: Episodes open at once; their pending turns go to the agent as one batch.
        max_turns: Assistant turns before an episode is truncated.
        seed: Base of the env reset seeds (``seed + repeat``).
    """

    env_ids: list[str]
    split: str = "test"
    tasks: str | None = None
    episodes: int | None = None
    repeats: int = 1
    concurrency: int = 4
    max_turns: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.env_ids:
            raise EnvConfigError("give at least one env id, e.g. --env FTRL-MultiHop-v0")
        for env_id in self.env_ids:
            check_env_id(env_id)
        if CUSTOM_ID in self.env_ids and not self.tasks:
            raise EnvConfigError(f"{CUSTOM_ID} needs a task file: add --tasks PATH.jsonl")
        if self.tasks and CUSTOM_ID not in self.env_ids:
            raise EnvConfigError(f"--tasks is only read by {CUSTOM_ID}; add --env {CUSTOM_ID}")
        if self.episodes is not None and self.episodes < 1:
            raise EnvConfigError(f"episodes must be at least 1 (or None for all), got {self.episodes}")
        if self.repeats < 1 or self.concurrency < 1 or self.max_turns < 1:
            raise EnvConfigError("repeats, concurrency and max_turns must each be at least 1")


def check_env_id(env_id: str) -> None:
    """Raise ``EnvConfigError`` naming the closest registered id when ``env_id`` is unknown."""
    if env_id in gym.registry:
        return
    known = sorted(k for k in gym.registry if k.startswith("FTRL-")) or sorted(gym.registry)
    close = difflib.get_close_matches(env_id, known, n=1, cutoff=0.4)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise EnvConfigError(f"unknown env id {env_id!r}.{hint} Known FTRL ids: {', '.join(known)}")


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: a task of an env, and which repeat of it."""

    env_id: str
    task_index: int
    repeat: int


@dataclass
class _Episode:
    spec: EpisodeSpec
    env: Any
    info: dict[str, Any]
    started: float
    turns: int = 0
    format_errors: int = 0
    total_return: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    trace: list[dict[str, Any]] = field(default_factory=list)


def plan_episodes(config: EvalConfig, pool: EnvPool) -> list[EpisodeSpec]:
    """List the run's episodes, task by task and repeat by repeat, env after env."""
    specs = []
    for env_id in config.env_ids:
        env = pool.take(env_id)
        count = len(env.unwrapped.tasks)
        pool.give_back(env_id, env)
        specs.extend(
            EpisodeSpec(env_id, index, repeat)
            for repeat in range(config.repeats)
            for index in spread_indices(count, config.episodes)
        )
    return specs


def spread_indices(count: int, wanted: int | None) -> list[int]:
    """``wanted`` task indices spread evenly over ``range(count)`` (all of them when None or more).

    Examples:
        ``spread_indices(10, 3) == [0, 3, 6]``; ``spread_indices(2, 5) == [0, 1]``.
    """
    if wanted is None or wanted >= count:
        return list(range(count))
    return [i * count // wanted for i in range(wanted)]


def run_evaluation(
    agent: object,
    config: EvalConfig,
    store: ResultStore,
    progress: Callable[[int, int], Any] | None = None,
) -> list[dict[str, Any]]:
    """Run every episode of ``config`` not yet in ``store``; write each to it the moment it ends.

    Up to ``config.concurrency`` episodes are open at once. Each round, the pending turn of every
    open episode goes to the agent as one batch (``generate_outputs``), then every env steps (in
    threads: tool calls run in sandbox processes). Rewards and metrics are the env's own.

    Args:
        agent: Any agent (see ``ftrl_gym.agents.base.Agent``).
        config: What to run.
        store: The run's JSONL results; episodes already there are skipped.
        progress: Called as ``progress(done, total)`` after each finished episode.

    Returns:
        The stored record of every episode of the run, in plan order (those of earlier, interrupted
        runs included), so the report covers exactly this command's episodes.

    Raises:
        AgentError: The agent cannot answer (episodes finished before it are kept in ``store``).
    """
    label = agent_name(agent)
    pool = EnvPool(config.max_turns, split=config.split, tasks=config.tasks)
    finished = 0
    try:
        specs = plan_episodes(config, pool)
        keys = [_key(label, config, spec) for spec in specs]
        pending = [spec for spec, key in zip(specs, keys) if key not in store]
        done_before = len(specs) - len(pending)
        if progress:
            progress(done_before, len(specs))
        open_episodes: list[_Episode] = []
        with ThreadPoolExecutor(max_workers=config.concurrency) as steppers:
            while pending or open_episodes:
                while pending and len(open_episodes) < config.concurrency:
                    open_episodes.append(_start(agent, pool, config, pending.pop(0)))
                requests = [(ep.info["messages"], ep.info["tools"]) for ep in open_episodes]
                outputs = generate_outputs(agent, requests)
                ended = list(steppers.map(_step, open_episodes, outputs))
                for episode, over in zip(open_episodes, ended):
                    if over:
                        store.append(_record(label, config, episode))
                        finished += 1
                        pool.give_back(episode.spec.env_id, episode.env)
                        if progress:
                            progress(done_before + finished, len(specs))
                open_episodes = [ep for ep, over in zip(open_episodes, ended) if not over]
    finally:
        pool.close()
    return [record for record in map(store.get, keys) if record is not None]


def _key(label: str, config: EvalConfig, spec: EpisodeSpec) -> tuple[Any, ...]:
    return episode_key(_identity(label, config, spec))


def _identity(label: str, config: EvalConfig, spec: EpisodeSpec) -> dict[str, Any]:
    custom = spec.env_id == CUSTOM_ID
    return {
        "agent": label,
        "env": spec.env_id,
        "split": None if custom else config.split,
        "tasks": config.tasks if custom else None,
        "task_index": spec.task_index,
        "repeat": spec.repeat,
    }


def _start(agent: object, pool: EnvPool, config: EvalConfig, spec: EpisodeSpec) -> _Episode:
    env = pool.take(spec.env_id)
    _, info = env.reset(seed=config.seed + spec.repeat, options={"task_index": spec.task_index})
    reset = getattr(agent, "reset", None)
    if callable(reset):
        reset(env.unwrapped.task)
    return _Episode(spec, env, info, time.perf_counter())


def _step(episode: _Episode, output: Any) -> bool:
    """Step one episode with the agent's output; returns True when the episode is over.

    An output with a ``stop_reason`` (the model's context is full) ends the episode as truncated with
    that reason, without a step: the metrics are those of the turns played."""
    stop = getattr(output, "stop_reason", None)
    if stop:
        episode.info = {**episode.info, "truncation_reason": stop}
        episode.prompt_tokens += output.prompt_tokens
        return True
    _, reward, terminated, truncated, info = episode.env.step(output.response)
    episode.info = info
    episode.turns += 1
    episode.total_return += float(reward)
    episode.prompt_tokens += output.prompt_tokens
    episode.completion_tokens += output.completion_tokens
    breakdown = info.get("reward_breakdown") or {}
    if breakdown.get("branch") == "format_error" or info.get("parse_errors"):
        episode.format_errors += 1
    episode.trace.append(trace_turn(output.response, float(reward), info))
    return bool(terminated or truncated)


def trace_turn(response: str, reward: float, info: dict[str, Any]) -> dict[str, Any]:
    """One assistant turn of an episode's ``trace``: what the agent wrote and what the env made of it.

    Args:
        response: The agent's raw text for the turn.
        reward: The env's reward for the turn.
        info: The env's ``info`` after the turn.

    Returns:
        ``{"response", "reward", "branch", "calls", "solved", "results", "parse_errors"}``:
        ``results`` holds one line per executed call, ``name: text`` or ``name: error: ...``.
    """
    breakdown = info.get("reward_breakdown") or {}
    results = [
        f"{r['name']}: {r['text']}" if r.get("ok") else f"{r['name']}: error: {r.get('error')}"
        for r in info.get("tool_results") or []
    ]
    return {
        "response": response,
        "reward": reward,
        "branch": breakdown.get("branch"),
        "calls": int(breakdown.get("num_calls") or 0),
        "solved": int(breakdown.get("num_solved") or 0),
        "results": results,
        "parse_errors": list(info.get("parse_errors") or []),
    }


def _record(label: str, config: EvalConfig, episode: _Episode) -> dict[str, Any]:
    metrics = episode.info["metrics"]
    task = episode.env.unwrapped.task
    return {
        **_identity(label, config, episode.spec),
        "scenario": getattr(task, "scenario", None) or "unknown",
        "solve_p": float(metrics["solve_p"]),
        "solve_r": float(metrics["solve_r"]),
        "solve_f1": float(metrics["solve_f1"]),
        "tool_calls": int(metrics["calls"]),
        "solved": int(metrics["solved"]),
        "total_answers": int(metrics["total_answers"]),
        "return": episode.total_return,
        "turns": episode.turns,
        "format_errors": episode.format_errors,
        "prompt_tokens": episode.prompt_tokens,
        "completion_tokens": episode.completion_tokens,
        "wall_s": round(time.perf_counter() - episode.started, 4),
        "truncation_reason": episode.info.get("truncation_reason"),
        "accepted": _accepted(episode.info, task),
        "question": _question(task),
        "answers": task.unsolved_set,
        "trace": episode.trace,
    }


def _accepted(info: dict[str, Any], task: Any) -> bool | None:
    """Whether a scorer accepted the episode: every user turn, for a task judged per user turn (BFCL's
    multi-turn check); else Solve-F1 = 1; None for a task without a scorer."""
    if info.get("episode_accepted") is not None:
        return bool(info["episode_accepted"])
    return float(info["metrics"]["solve_f1"]) == 1.0 if getattr(task, "scorer", None) is not None else None


def _question(task: Any) -> str:
    """The task's last user message (the question the agent was asked)."""
    users = [m.get("content", "") for m in task.messages if m.get("role") == "user"]
    return str(users[-1]) if users else ""
