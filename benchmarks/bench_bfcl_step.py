"""Latency of ``env.step`` on BFCL's single-turn tasks: the gold calls of each task, scored by BFCL's
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
from ftrl_gym.bfcl import SINGLE_TURN_CATEGORIES, source


def gold_action(category: str, task_id: str) -> dict | str:
    """An assistant message with the first acceptable value of each argument (text for irrelevance)."""
    answer = source.possible_answers(category)[task_id]
    if not answer:
        return "None of the functions can answer this."
    calls = []
    for item in answer:
        name, params = next(iter(item.items()))
        arguments = {key: next(v for v in values if v != "") for key, values in params.items()
                     if any(v != "" for v in values)}
        calls.append({"type": "function", "function": {"name": source.sent_name(name), "arguments": arguments}})
    return {"role": "assistant", "content": "", "tool_calls": calls}


def time_category(category: str, per_category: int, seed: int) -> list[float]:
    """Seconds of ``env.step`` for the gold action of up to ``per_category`` sampled tasks."""
    env = gym.make("FTRL-BFCL-v0", category=category)
    ids = [task.extra["id"] for task in env.unwrapped.tasks]
    times = []
    try:
        for task_id in random.Random(seed).sample(ids, min(per_category, len(ids))):
            action = gold_action(category, task_id)
            env.reset(options={"task_id": task_id})
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
