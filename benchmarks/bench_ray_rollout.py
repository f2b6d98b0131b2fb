"""Rollout throughput on Ray with 1 vs 2 rollout workers, and the env + Ray overhead over generation.

Run ``python -m benchmarks.bench_ray_rollout`` (``--help`` for sizes). It starts a local Ray
instance, a ``RolloutFleet`` of 1 and then 2 workers (each owning a generator and its envs), sends
them the model's weights through the object store, and plays the same episodes of
``FTRL-SingleHop-v0`` (train split) ``--repeats`` times after one warm-up round. It prints the
medians of env steps/s, generated tokens/s, and the overhead fraction
``(driver-seen request time - generator time) / generator time``: env stepping, tokenising and
Ray's scheduling and transfers, against the time spent generating. ``--backend vllm`` (the
default) falls back to ``transformers`` when a vLLM engine does not start in the actor, and says so.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.distributed.fleet import RolloutFleet
from ftrl_gym.agents.training.rollout import EpisodeSpec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="model name or folder [smollm2]")
    parser.add_argument("--backend", choices=("vllm", "transformers"), default="vllm")
    parser.add_argument("--env-id", default="FTRL-SingleHop-v0")
    parser.add_argument("--episodes", type=int, default=8, help="episodes per round [8]")
    parser.add_argument("--max-turns", type=int, default=2, help="turns per episode [2]")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="tokens per turn [48]")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per fleet [3]")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--worker-cpus", type=float, default=1.0, help="CPUs per worker [1]")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace, workers: int, backend: str) -> Any:
    """The ``TrainConfig`` of one fleet."""
    return build_config(
        overrides={
            "model": args.model,
            "backend": backend,
            "env_ids": [args.env_id],
            "max_turns": args.max_turns,
            "max_new_tokens": args.max_new_tokens,
            "max_context_tokens": 2048,
            "micro_batch_size": args.episodes,
            "torch_threads": 1,
            "num_rollout_workers": workers,
            "rollout_worker_cpus": args.worker_cpus,
            "vllm_kv_cache_gib": 0.5,
        }
    )


def starting_weights(model: str) -> Any:
    """An object ref of the model's named tensors (what a learner would broadcast)."""
    import ray

    from ftrl_gym.agents.training.policy import Policy

    policy = Policy(model)
    return ray.put({k: v.detach() for k, v in policy.model.state_dict().items()})


def measure(fleet: RolloutFleet, config: Any, args: argparse.Namespace, rounds: int) -> list[dict]:
    """Play ``rounds`` rounds of ``--episodes`` episodes; one dict of rates per round."""
    from ftrl_gym.agents.training.generation import SamplingSettings

    settings = SamplingSettings(1, config.max_new_tokens, 1.0, 1.0, config.seed)
    results = []
    for round_ in range(rounds):
        specs = [
            EpisodeSpec(args.env_id, i, round_, f"{args.env_id}/{i}/r{round_}")
            for i in range(args.episodes)
        ]
        fleet.counters.requests.clear()
        started = time.perf_counter()
        episodes = fleet.play(specs, settings, fleet.version)
        wall = time.perf_counter() - started
        steps = sum(len(e.turns) for e in episodes)
        tokens = sum(len(t.completion.token_ids) for e in episodes for t in e.turns)
        latency = sum(r[0] for r in fleet.counters.requests)
        busy = sum(r[1] for r in fleet.counters.requests)
        generate = sum(r[2] for r in fleet.counters.requests)
        results.append(
            {
                "wall_s": wall,
                "env_steps_per_s": steps / wall,
                "tokens_per_s": tokens / wall,
                "overhead": (latency - generate) / generate,
                "env_overhead": (busy - generate) / generate,
                "ray_overhead": (latency - busy) / generate,
            }
        )
    return results


def start_fleet(args: argparse.Namespace, workers: int, weights: Any) -> tuple[RolloutFleet, str]:
    """A fleet on the requested back end, or on transformers when vLLM does not start."""
    backend = args.backend
    try:
        fleet = RolloutFleet(make_config(args, workers, backend))
    except Exception as exc:  # any failure to start the engine in the actor means: fall back
        if backend != "vllm":
            raise
        print(
            f"vLLM did not start in a Ray actor ({type(exc).__name__}: {exc}); using transformers"
        )
        args.backend = backend = "transformers"
        fleet = RolloutFleet(make_config(args, workers, backend))
    fleet.broadcast(weights, 0)
    return fleet, backend


def main(argv: list[str] | None = None) -> None:
    """Measure each fleet size and print a Markdown table of medians."""
    import ray

    args = parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    needed = max(args.workers) * args.worker_cpus
    ray.init(num_cpus=max(int(needed + 0.999), 1), include_dashboard=False, log_to_driver=False)
    try:
        weights = starting_weights(args.model)
        rows = []
        for workers in args.workers:
            fleet, backend = start_fleet(args, workers, weights)
            try:
                measure(fleet, fleet.config, args, 1)  # warm-up: engine caches, env sandboxes
                rounds = measure(fleet, fleet.config, args, args.repeats)
            finally:
                fleet.close()
            rows.append((workers, backend, rounds))
    finally:
        ray.shutdown()
    print(
        f"\n{args.model}, {args.env_id}, {args.episodes} episodes x <= {args.max_turns} turns x "
        f"<= {args.max_new_tokens} tokens, median of {args.repeats} rounds; "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| workers | backend | env steps/s | generated tokens/s | (env + Ray) / generation "
        "| env / generation | Ray / generation |"
    )
    print("|---|---|---|---|---|---|---|")
    for workers, backend, rounds in rows:
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(
            f"| {workers} | {backend} | {med['env_steps_per_s']:.2f} | {med['tokens_per_s']:.1f} "
            f"| {med['overhead']:.1%} | {med['env_overhead']:.1%} | {med['ray_overhead']:.1%} |"
        )


if __name__ == "__main__":
    main()
