"""Determinism: the same seed gives identical episodes across processes and across sync/async vector envs."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from reliability_helpers import DICE_TASK, call_text, fixture_records, random_action, rollout_digest

from ftrl_gym.envs.registration import CUSTOM_ID

HERE = Path(__file__).resolve().parent
EPISODES = 25


def digest_in_subprocess(seed: int, hash_seed: str) -> subprocess.Popen[str]:
    """Start ``rollout_digest(seed)`` in a fresh interpreter with the given ``PYTHONHASHSEED``."""
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); from reliability_helpers import rollout_digest; "
            f"print(rollout_digest({seed}, {EPISODES}))")
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_same_seed_gives_identical_episodes_across_processes() -> None:
    runs = [digest_in_subprocess(11, "1"), digest_in_subprocess(11, "2"), digest_in_subprocess(12, "1")]
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
        outputs.append(out.strip())
    same_a, same_b, other = outputs
    assert len(same_a) == 64
    assert same_a == same_b == rollout_digest(11, EPISODES)
    assert other != same_a


def vector_rollout(mode: str, seed: int, steps: int) -> list[tuple]:
    """Observations, rewards, flags and turn counters of a 2-env vector env fed the same actions."""
    tasks = fixture_records() + [DICE_TASK]
    names = sorted({t["tools"][i]["function"]["name"] for t in tasks for i in range(len(t["tools"]))})
    rng = random.Random(seed)
    envs = gym.make_vec(CUSTOM_ID, num_envs=2, vectorization_mode=mode, tasks=tasks, max_turns=3)
    try:
        obs, infos = envs.reset(seed=seed)
        trace: list[tuple] = [(tuple(obs), tuple(infos["task_index"]))]
        for _ in range(steps):
            actions = tuple(random_action(rng, names, "7") for _ in range(2))
            obs, rewards, terminated, truncated, infos = envs.step(actions)
            trace.append((tuple(obs), tuple(np.round(rewards, 12)), tuple(terminated), tuple(truncated),
                          tuple(infos.get("turn", ()))))
    finally:
        envs.close()
    return trace


def test_sync_and_async_vector_envs_give_identical_episodes() -> None:
    sync = vector_rollout("sync", seed=5, steps=40)
    assert sync == vector_rollout("async", seed=5, steps=40)
    assert sync != vector_rollout("sync", seed=6, steps=40)


def test_tool_randomness_follows_the_env_seed() -> None:
    env = gym.make(CUSTOM_ID, tasks=[DICE_TASK])
    rolls = []
    for _ in range(2):
        env.reset(seed=3)
        obs, *_ = env.step(call_text([{"name": "roll", "arguments": {}}]))
        rolls.append(obs)
    env.reset(seed=4)
    other, *_ = env.step(call_text([{"name": "roll", "arguments": {}}]))
    env.close()
    assert rolls[0] == rolls[1]
    assert other != rolls[0]
