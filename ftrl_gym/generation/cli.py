"""``ftrl-gym generate``: build tool environments with the offline or the LLM backend."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from ftrl_gym.generation.datasets import RELEASE_SEED, RELEASE_SIZES, build_release
from ftrl_gym.generation.pipeline import (
    GenerationConfig,
    Summary,
    generate,
    inspect_candidate,
    validation_sandbox,
)
from ftrl_gym.generation.scaling import ScalingConfig
from ftrl_gym.generation.scenes import SCENARIOS
from ftrl_gym.tasks import TaskRecord, save_tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``generate`` options on a (sub)parser."""
    parser.add_argument(
        "--backend",
        choices=("offline", "openai"),
        default="offline",
        help="offline: seeded synthetic world, no model; openai: any OpenAI-compatible endpoint",
    )
    parser.add_argument(
        "--scenario",
        default="all",
        help=f"'all' or a comma-separated list of: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--n", type=int, default=100, help="validated tasks per scenario")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="master seed, same seed same bytes (default 0; the release seed with --release)",
    )
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--out", type=Path, default=Path("generated"), help="output directory")
    parser.add_argument(
        "--release",
        action="store_true",
        help="build the shipped release into --out: every split at the release sizes, "
        "with manifest.json",
    )
    parser.add_argument(
        "--inspect",
        type=int,
        default=None,
        metavar="INDEX",
        help="print every stage's output for candidate INDEX of the first --scenario (offline) as JSON",
    )
    parser.add_argument(
        "--merge-rate",
        type=float,
        default=GenerationConfig.merge_rate,
        help="function integration: probability of merging different ops of one family (default 0.8)",
    )
    for name, default in ScalingConfig().to_dict().items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(default),
            default=default,
            help=f"complexity scaling: {name} (default {default})",
        )
    parser.add_argument(
        "--base-url", default=None, help="openai backend: endpoint, e.g. http://localhost:8000/v1"
    )
    parser.add_argument("--model", default=None, help="openai backend: model name")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="openai backend: requests in flight"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="openai backend: response cache (default OUT/.llm_cache)",
    )


def _scenarios(value: str) -> list[str]:
    """Parse ``--scenario``."""
    chosen = (
        list(SCENARIOS) if value == "all" else [s.strip() for s in value.split(",") if s.strip()]
    )
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise SystemExit(
            f"ftrl-gym generate: unknown scenario(s) {', '.join(unknown)}; "
            f"choose from all, {', '.join(SCENARIOS)}"
        )
    return chosen


def run(args: argparse.Namespace) -> int:
    """Run ``ftrl-gym generate``; returns the exit status."""
    scenarios = _scenarios(args.scenario)
    if args.release:
        return _release(args, scenarios)
    scaling = ScalingConfig(**{k: getattr(args, k) for k in ScalingConfig().to_dict()})
    config = GenerationConfig(
        scenarios=scenarios,
        n=args.n,
        seed=args.seed or 0,
        split=args.split,
        merge_rate=args.merge_rate,
        scaling=scaling,
    )
    if args.inspect is not None:
        with validation_sandbox(None) as sandbox:
            stages = inspect_candidate(config, scenarios[0], args.inspect, sandbox)
        print(json.dumps(stages, indent=2, ensure_ascii=False))
        return 0
    desc = f"generate {args.split}" + (f" ({args.model})" if args.backend == "openai" else "")
    with tqdm(total=len(scenarios) * args.n, desc=desc, file=sys.stderr) as bar:
        if args.backend == "openai":
            records, summary = _generate_llm(args, config, bar.update)
        else:
            records, summary = generate(config, progress=bar.update)
    for scenario, tasks in records.items():
        path = args.out / scenario / f"{args.split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tasks(tasks, path, json_strings=False)
    print(summary.render())
    print(f"wrote {sum(len(t) for t in records.values())} tasks under {args.out}")
    return 0


def _generate_llm(
    args: argparse.Namespace, config: GenerationConfig, progress: Callable[[int], None]
) -> tuple[dict[str, list[TaskRecord]], Summary]:
    """Run the LLM backend with the endpoint options of the command line."""
    from ftrl_gym.generation.llm_backend import LLMConfig, generate_llm

    if not args.model:
        raise SystemExit(
            "ftrl-gym generate --backend openai needs --model (and --base-url for a local server)"
        )
    llm = LLMConfig(
        model=args.model,
        base_url=args.base_url,
        concurrency=args.concurrency,
        cache_dir=args.cache_dir or args.out / ".llm_cache",
    )
    return generate_llm(config, llm, progress=progress)


def _release(args: argparse.Namespace, scenarios: list[str]) -> int:
    """Build the shipped release (every split at the release sizes, and the manifest) into ``--out``."""
    total = len(scenarios) * sum(RELEASE_SIZES.values())
    seed = RELEASE_SEED if args.seed is None else args.seed
    with tqdm(total=total, desc="release", file=sys.stderr) as bar:
        manifest = build_release(args.out, scenarios, seed, progress=bar.update)
    print(json.dumps(manifest["summary"], indent=2))
    return 0
