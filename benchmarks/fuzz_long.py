"""Long fuzzing run: hypothesis-generated hostile actions stepped through an env until a step count is reached."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import ftrl_gym  # noqa: F401  (registers the ids)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "reliability"))

from fuzz_strategies import actions

from ftrl_gym.envs.registration import CUSTOM_ID
from ftrl_gym.tasks import load_tasks

FIXTURE = REPO / "tests" / "data" / "tasks.jsonl"
"""The tasks the fuzzed actions are stepped through (one of them stateful)."""


@dataclass
class FuzzStats:
    """What the run covered."""

    steps: int = 0
    episodes: int = 0
    examples: int = 0
    chunks: int = 0
    wall_s: float = 0.0
    failure: str | None = None


def check_episode(env: gym.Env, task_index: int, turns: list[Any], stats: FuzzStats) -> None:
    """Play ``turns`` and check the properties of the reliability suite after every step."""
    obs, info = env.reset(options={"task_index": task_index})
    assert env.observation_space.contains(obs)
    stats.episodes += 1
    for action in turns:
        obs, reward, terminated, truncated, info = env.step(action)
        stats.steps += 1
        assert env.observation_space.contains(obs)
        assert isinstance(reward, float) and math.isfinite(reward) and -0.5 <= reward < 2.0
        assert truncated == (info["truncation_reason"] is not None)
        for result in info["tool_results"]:
            assert result["ok"] or (result["error"].startswith("error: ") and "\n" not in result["error"])
        json.dumps(info["messages"])
        if terminated or truncated:
            break
    obs, info = env.reset(options={"task_index": task_index})
    assert env.observation_space.contains(obs) and info["turn"] == 0


def run(target_steps: int, base_seed: int, chunk: int, max_turns: int) -> FuzzStats:
    """Fuzz in chunks of ``chunk`` examples (one hypothesis seed each) until ``target_steps`` steps."""
    names = sorted({name for task in load_tasks(FIXTURE) for name in task.tool_names})
    env = gym.make(CUSTOM_ID, tasks=str(FIXTURE), tool_timeout=2.0, max_turns=max_turns)
    stats = FuzzStats()
    start = time.perf_counter()

    @settings(max_examples=chunk, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(task_index=st.integers(0, 2), turns=st.lists(actions(names), min_size=1, max_size=max_turns))
    def prop(task_index: int, turns: list[Any]) -> None:
        stats.examples += 1
        check_episode(env, task_index, turns, stats)

    try:
        while stats.steps < target_steps:
            seed(base_seed + stats.chunks)(prop)()
            stats.chunks += 1
            rate = stats.steps / (time.perf_counter() - start)
            print(f"chunk {stats.chunks}: {stats.steps:,} steps, {stats.examples:,} examples, {rate:.0f} steps/s",
                  flush=True)
    except Exception as exc:  # noqa: BLE001 - a falsified property is the finding; hypothesis printed it
        stats.failure = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        env.close()
        stats.wall_s = round(time.perf_counter() - start, 1)
    return stats


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``python -m benchmarks.fuzz_long --steps 100000 --out runs/fuzz``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100_000, help="env steps to fuzz")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed of the first chunk")
    parser.add_argument("--chunk", type=int, default=500, help="examples per hypothesis run")
    parser.add_argument("--max-turns", type=int, default=5, help="actions per generated episode")
    parser.add_argument("--out", type=Path, default=Path("runs/fuzz"), help="folder for fuzz.json")
    args = parser.parse_args(argv)
    stats = run(args.steps, args.seed, args.chunk, args.max_turns)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(asdict(stats), indent=2) + "\n")
    for key, value in asdict(stats).items():
        print(f"{key:<10} {value}")
    return 0 if stats.failure is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
