"""Validated tasks per second of the offline construction pipeline, on one core.

Run ``python benchmarks/bench_generation.py`` (``--help`` for sizes). The process and its sandbox
worker are pinned to one CPU. For each scenario it times the whole pipeline (stages 1–5 with sandbox
validation) and, apart, stages 1–5a alone, and prints a Markdown table; the best of ``--repeats`` runs
counts, so load from other processes skews it less.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from ftrl_gym.generation.pipeline import (
    GenerationConfig,
    Summary,
    build_candidate,
    candidate_rng,
    iter_scenario,
)
from ftrl_gym.generation.scenes import SCENARIOS
from ftrl_gym.generation.world import build_world
from ftrl_gym.sandbox import Sandbox


def pin_to_one_core() -> str:
    """Pin this process (and the workers it will start) to one CPU; returns which, or why not."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def best_rate(run, n: int, repeats: int) -> float:
    """Tasks per second of the fastest of ``repeats`` runs that each produce ``n`` tasks."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="validated tasks per scenario and run")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per measurement; the best counts"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pinning = pin_to_one_core()
    config = GenerationConfig(n=args.n, seed=args.seed, split="train")
    world = build_world(f"{args.seed}:train")
    rows = []
    with Sandbox() as sandbox:
        for scenario in SCENARIOS:
            summary = Summary()

            def validated_run(scenario: str = scenario, summary: Summary = summary) -> None:
                list(iter_scenario(scenario, world, config, sandbox, summary))

            def built_run(scenario: str = scenario) -> None:
                for i in range(args.n):
                    build_candidate(scenario, world, candidate_rng(config, scenario, i), config)

            validated = best_rate(validated_run, args.n, args.repeats)
            built = best_rate(built_run, args.n, args.repeats)
            rejected = sum(summary.rejected.values()) // args.repeats
            rows.append((scenario, validated, built, rejected))
    print(
        f"offline generation, {args.n} tasks per scenario, best of {args.repeats}; {pinning}; "
        f"Python {platform.python_version()}\n"
    )
    print("| scenario | validated tasks/s | stages 1–5a only, tasks/s | rejected per run |")
    print("|---|---:|---:|---:|")
    for scenario, validated, built, rejected in rows:
        print(f"| {scenario} | {validated:.0f} | {built:.0f} | {rejected} |")
    total = len(rows) * args.n / sum(args.n / r[1] for r in rows)
    print(f"| **all four** | **{total:.0f}** | | |")


if __name__ == "__main__":
    main()
