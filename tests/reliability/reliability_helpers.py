"""Shared pieces of the reliability tests: hypothesis profile, fixture tasks, process accounting."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[2]
"""The repository root."""
FIXTURE = REPO / "tests" / "data" / "tasks.jsonl"
"""Three hand-written tasks: single-hop weather, multi-hop capital/weather, stateful bank transfer."""
STATEFUL_TASK = 2
"""Index of the stateful bank task in :data:`FIXTURE`."""

SCALE = float(os.environ.get("FTRL_FUZZ_SCALE", "1"))
"""Multiplier of every fuzz test's example count (``FTRL_FUZZ_SCALE=20`` for a longer local run)."""

FUZZ = settings(
    deadline=None,
    derandomize=os.environ.get("FTRL_FUZZ_RANDOM") != "1",
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
)
"""CI profile: derandomized (the same examples on every run, so a failure reproduces), no deadline
(two busy cores), no example database. ``FTRL_FUZZ_RANDOM=1`` draws fresh examples instead."""


def examples(count: int) -> settings:
    """The fuzz profile with ``count`` examples, scaled by ``FTRL_FUZZ_SCALE``."""
    return settings(FUZZ, max_examples=max(1, int(count * SCALE)))


def fixture_records() -> list[dict[str, Any]]:
    """The fixture tasks as dicts with structured fields (not JSON strings)."""
    from ftrl_gym.tasks import load_tasks

    return [task.to_dict(json_strings=False) for task in load_tasks(FIXTURE)]


def call_text(calls: list[dict[str, Any]]) -> str:
    """Hermes ``<tool_call>`` blocks for ``[{"name", "arguments"}, ...]``."""
    return "\n".join(
        "<tool_call>\n" + json.dumps({"name": c["name"], "arguments": c["arguments"]}) + "\n</tool_call>"
        for c in calls
    )


def children() -> list[psutil.Process]:
    """Every live descendant process of this test process (zombies included)."""
    return psutil.Process().children(recursive=True)


def zombies() -> list[psutil.Process]:
    """Descendants that exited but were never reaped."""
    out = []
    for child in children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def direct_children() -> set[int]:
    """Pids of this process's own children (each sandbox adds one: its zygote, or bubblewrap around it)."""
    return {child.pid for child in psutil.Process().children()}


def descendant_pids() -> set[int]:
    """Pids of every descendant process."""
    return {child.pid for child in children()}


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, poll_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


def pid_exists(pid: int) -> bool:
    """Whether ``pid`` names a process that is running (a zombie does not count)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


DICE_TASK: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Roll the dice and tell me the number."}],
    "tools": [{"type": "function", "function": {"name": "roll", "description": "Roll a die.",
                                                "parameters": {"type": "object", "properties": {}}}}],
    "codes": {"roll": "import random\n\ndef roll():\n    return random.randint(1, 10 ** 9)\n"},
    "unsolved_set": {"roll": ["7"]},
    "answer": "7",
}
"""A task whose tool uses ``random``: its results are reproducible only if the env seeds the session."""


def random_action(rng: Any, tool_names: list[str], answer: str | None) -> str:
    """A seeded agent's turn: a call with drawn arguments, the answer, or garbage."""
    roll = rng.random()
    if roll < 0.6 and tool_names:
        name = rng.choice(tool_names)
        arguments = {} if rng.random() < 0.4 else {
            rng.choice(["city", "user", "country", "x"]): rng.choice(["Paris", "ann", "France", 3])}
        return call_text([{"name": name, "arguments": arguments}])
    if roll < 0.8:
        return f"The answer is {answer}."
    return "".join(rng.choice("ab <>{}\"") for _ in range(rng.randrange(20)))


def rollout_digest(seed: int, episodes: int) -> str:
    """SHA-256 of every observation, reward, flag and message of ``episodes`` seeded episodes.

    The env is ``FTRL-Custom-v0`` over the fixture tasks plus :data:`DICE_TASK`; tasks are drawn by
    the env's ``np_random`` and actions by ``random.Random(seed)``, so the digest depends on the seed only.
    """
    import hashlib
    import random

    import gymnasium as gym

    import ftrl_gym  # noqa: F401

    rng = random.Random(seed)
    digest = hashlib.sha256()
    env = gym.make("FTRL-Custom-v0", tasks=fixture_records() + [DICE_TASK], max_turns=4)
    try:
        for episode in range(episodes):
            obs, info = env.reset(seed=seed if episode == 0 else None)
            digest.update(json.dumps([obs, info["task_index"]]).encode("utf-8", "surrogatepass"))
            task = env.unwrapped.task
            done = False
            while not done:
                obs, reward, terminated, truncated, info = env.step(random_action(rng, task.tool_names, task.answer))
                done = terminated or truncated
                record = [obs, reward, terminated, truncated, info["messages"], info["metrics"]]
                digest.update(json.dumps(record, sort_keys=True).encode("utf-8", "surrogatepass"))
    finally:
        env.close()
    return digest.hexdigest()
