"""Latency of ``env.step`` on BFCL's single-turn tasks: each record's gold solution, scored by BFCL's
AST checker (the step's whole cost: parsing, the host-side answer of code-less tools, the checker).

Run with bfcl-eval installed: ``python benchmarks/bench_bfcl_step.py --per-category 50``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import gymnasium as gym

import ftrl_gym  # noqa: F401  (registers the ids)
from ftrl_gym.bfcl import SINGLE_TURN_CATEGORIES


def gold_action(task) -> dict | str:
    """The record's gold solution as an assistant message (text for an irrelevance task)."""
    if not task.solution:
        return "None of the functions can answer this."
    calls = [{"type": "function", "function": call} for call in task.solution[0]]
    return {"role": "assistant", "content": "", "tool_calls": calls}


def time_category(category: str, per_category: int, seed: int) -> list[float]:
    """Seconds of ``env.step`` for the gold action of up to ``per_category`` sampled tasks."""
    env = gym.make("FTRL-BFCL-v0", category=category)
    tasks = env.unwrapped.tasks
    times = []
    try:
        for index in random.Random(seed).sample(range(len(tasks)), min(per_category, len(tasks))):
            action = gold_action(tasks[index])
            env.reset(options={"task_index": index})
            start = time.perf_counter()
            env.step(action)
            times.append(time.perf_counter() - start)
    finally:
        env.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=50, help="tasks timed per category")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task sample")
    args = parser.parse_args()
    every = []
    print(f"{'category':<24} {'steps':>5} {'median ms':>10} {'p90 ms':>8}")
    for category in SINGLE_TURN_CATEGORIES:
        times = sorted(time_category(category, args.per_category, args.seed))
        every += times
        p90 = times[int(0.9 * (len(times) - 1))]
        print(f"{category:<24} {len(times):>5} {statistics.median(times) * 1e3:>10.3f} {p90 * 1e3:>8.3f}")
    print(f"{'all':<24} {len(every):>5} {statistics.median(every) * 1e3:>10.3f}   (target: median <= 1 ms)")


if __name__ == "__main__":
    main()
