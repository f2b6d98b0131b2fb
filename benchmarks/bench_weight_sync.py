"""Seconds per weight sync, learner rank 0 to the rollout workers: object store vs collective group.

Run ``python -m benchmarks.bench_weight_sync`` (``--help`` for sizes). It starts a local Ray
instance, one ``Learner`` actor and a ``RolloutFleet`` of ``--workers`` transformers-backend
workers per mode, broadcasts the learner's weights once untimed (the collective mode forms its
group then), then ``--repeats`` more times, and prints the median seconds of one
``RolloutFleet.broadcast`` (the driver's whole wait: the learner's copy out, the transfer, every
worker's ``load_weights``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from typing import Any

from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.distributed.cluster import end_actors, learner_placement
from ftrl_gym.agents.training.distributed.fleet import RolloutFleet
from ftrl_gym.agents.training.learner import Learner

MODES = ("object_store", "collective")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="model name or folder [smollm2]")
    parser.add_argument("--workers", type=int, default=2, help="rollout workers [2]")
    parser.add_argument("--repeats", type=int, default=5, help="timed syncs per mode [5]")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace, mode: str) -> Any:
    """The ``TrainConfig`` of one mode (the actors share the CPUs: 1 learner, 0.5 per worker)."""
    return build_config(
        overrides={
            "model": args.model,
            "backend": "transformers",
            "torch_threads": 1,
            "num_rollout_workers": args.workers,
            "rollout_worker_cpus": 0.5,
            "learner_cpus": 1.0,
            "weight_sync": mode,
        }
    )


def time_syncs(config: Any, repeats: int, out_dir: str) -> list[float]:
    """Seconds of each timed broadcast of one mode (after one untimed one)."""
    import ray

    learner = ray.remote(Learner).options(**learner_placement(config).options())
    learner = learner.remote(config.to_dict(), 0, 1, out_dir)
    fleet = RolloutFleet(config, learner)
    collective = config.weight_sync == "collective"
    try:
        seconds = []
        for version in range(repeats + 1):
            weights = None if collective else learner.weights.remote()
            started = time.perf_counter()
            fleet.broadcast(weights, version)
            seconds.append(time.perf_counter() - started)
        return seconds[1:]
    finally:
        fleet.close()
        end_actors([learner])


def main(argv: list[str] | None = None) -> None:
    """Time each mode and print a Markdown table of medians."""
    import ray

    args = parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cpus = max(int(1 + 0.5 * args.workers + 0.999), 1)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as out_dir:
            rows = [
                (mode, time_syncs(make_config(args, mode), args.repeats, out_dir))
                for mode in args.modes
            ]
    finally:
        ray.shutdown()
    print(
        f"\n{args.model}, 1 learner -> {args.workers} transformers workers, median of "
        f"{args.repeats} syncs; {os.cpu_count()} CPUs ({platform.machine()}), "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| weight_sync | median s / sync | min s | max s |")
    print("|---|---|---|---|")
    for mode, seconds in rows:
        print(
            f"| {mode} | {statistics.median(seconds):.3f} | {min(seconds):.3f} "
            f"| {max(seconds):.3f} |"
        )


if __name__ == "__main__":
    main()
