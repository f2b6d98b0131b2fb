"""``ftrl-gym generate``: build tool environments with the offline or the LLM backend."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ftrl_gym.atomic import write_text_atomically
from ftrl_gym.cli import user_error
from ftrl_gym.errors import FTRLError
from ftrl_gym.generation.datasets import RELEASE_SEED, RELEASE_SIZES, build_release
from ftrl_gym.generation.funnel import Funnel
from ftrl_gym.generation.llm_client import RESPONSE_FORMATS, LLMConfig, parse_max_tokens
from ftrl_gym.generation.llm_prompts import MAX_TOKENS
from ftrl_gym.generation.pipeline import (
    GenerationConfig,
    Summary,
    generate,
    inspect_candidate,
    validation_sandbox,
)
from ftrl_gym.generation.progress import Progress
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
        "--concurrency",
        type=int,
        default=LLMConfig.concurrency,
        help=f"openai backend: candidates built at once, so requests in flight (default {LLMConfig.concurrency})",
    )
    parser.add_argument(
        "--max-tokens",
        default=None,
        metavar="N|STAGE=N,...",
        help="openai backend: max_tokens of every stage (800), or per stage (scene=256,deployment=4096); "
        f"defaults {', '.join(f'{k}={v}' for k, v in MAX_TOKENS.items())}; an answer cut off there "
        "is rejected as 'truncated'",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=LLMConfig.timeout_s,
        help="openai backend: seconds one request may take; a request that takes longer rejects its "
        f"candidate as 'timeout' and is not retried (default {LLMConfig.timeout_s:g})",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=LLMConfig.max_retries,
        help="openai backend: retries of a connection error, 429 or 5xx, with backoff 1, 2, 4... s "
        f"(default {LLMConfig.max_retries})",
    )
    parser.add_argument(
        "--response-format",
        choices=RESPONSE_FORMATS,
        default=LLMConfig.response_format,
        help="openai backend: json_schema sends each stage's JSON schema (guided decoding on vLLM; "
        "falls back to json_object where the server refuses it), json_object asks for any JSON "
        "object, none asks for nothing (default json_schema)",
    )
    parser.add_argument(
        "--max-candidates",
        type=int,
        default=None,
        help="openai backend: candidates tried per scenario before giving up (default n * 4 + 20)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="openai backend: response cache (default OUT/.llm_cache)",
    )


class UsageError(FTRLError, ValueError):
    """A command line that cannot run as given."""


REPORT_NAME = "report.json"
"""The run's report in ``--out``: status, error, the funnel (LLM backend) and the summary."""


def _scenarios(value: str) -> list[str]:
    """Parse ``--scenario``."""
    chosen = (
        list(SCENARIOS) if value == "all" else [s.strip() for s in value.split(",") if s.strip()]
    )
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise UsageError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from all, {', '.join(SCENARIOS)}"
        )
    return chosen


def run(args: argparse.Namespace) -> int:
    """Run ``ftrl-gym generate``; returns the exit status (2, with one line on stderr, on any error)."""
    try:
        return _run(args)
    except FTRLError as exc:
        return user_error("generate", exc)


def _run(args: argparse.Namespace) -> int:
    scenarios = _scenarios(args.scenario)
    if args.release:
        return _release(args, scenarios)
    config = _config(args, scenarios)
    if args.inspect is not None:
        with validation_sandbox(None) as sandbox:
            stages = inspect_candidate(config, scenarios[0], args.inspect, sandbox)
        print(json.dumps(stages, indent=2, ensure_ascii=False))
        return 0
    if args.backend == "openai":
        records, summary = _generate_llm(args, config)
    else:
        desc = f"generate {args.split}"
        with Progress(len(scenarios) * args.n, desc) as progress:
            records, summary = generate(config, progress=progress.update)
        _write_report(
            args.out, {"status": "ok", "backend": "offline", "summary": summary.to_dict()}
        )
    for scenario, tasks in records.items():
        path = args.out / scenario / f"{args.split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tasks(tasks, path, json_strings=False)
    print(summary.render())
    print(f"wrote {sum(len(t) for t in records.values())} tasks under {args.out}")
    return 0


def _config(args: argparse.Namespace, scenarios: list[str]) -> GenerationConfig:
    """The generation config of the command line; a value it refuses is a usage error."""
    if args.n < 1:
        raise UsageError(f"--n must be at least 1 (validated tasks per scenario), got {args.n}")
    try:
        scaling = ScalingConfig(**{k: getattr(args, k) for k in ScalingConfig().to_dict()})
        return GenerationConfig(
            scenarios=scenarios,
            n=args.n,
            seed=args.seed or 0,
            split=args.split,
            merge_rate=args.merge_rate,
            scaling=scaling,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _llm_config(args: argparse.Namespace) -> LLMConfig:
    """The endpoint options of the command line as an :class:`LLMConfig`."""
    if not args.model:
        raise UsageError("--backend openai needs --model (and --base-url for a local server)")
    try:
        return LLMConfig(
            model=args.model,
            base_url=args.base_url,
            concurrency=args.concurrency,
            max_retries=args.retries,
            timeout_s=args.timeout,
            response_format=args.response_format,
            max_tokens=parse_max_tokens(args.max_tokens) if args.max_tokens else dict(MAX_TOKENS),
            max_candidates=args.max_candidates,
            cache_dir=args.cache_dir or args.out / ".llm_cache",
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _generate_llm(
    args: argparse.Namespace, config: GenerationConfig
) -> tuple[dict[str, list[TaskRecord]], Summary]:
    """Run the LLM backend; the funnel is printed and the report written whether it succeeds or not."""
    from ftrl_gym.generation.llm_backend import ChatClient, generate_llm

    llm = _llm_config(args)
    client, funnel, started = ChatClient(llm), Funnel(), time.monotonic()
    report = _report_head(llm, config)
    try:
        with Progress(
            len(config.scenarios) * config.n, f"generate {args.split} ({llm.model})"
        ) as progress:
            records, summary = generate_llm(
                config, llm, progress=progress, client=client, funnel=funnel
            )
        report |= {"status": "ok", "summary": summary.to_dict()}
        return records, summary
    except FTRLError as exc:
        report["error"] = " ".join(str(exc).split())
        raise
    finally:
        report |= {
            "response_format": client.format,
            "json_schema_refused": client.refusal,
            "requests": client.requests,
            "elapsed_s": round(time.monotonic() - started, 1),
            "funnel": funnel.to_dict(),
        }
        _write_report(args.out, report)
        print(funnel.render())
        print(f"report: {args.out / REPORT_NAME}")


def _report_head(llm: LLMConfig, config: GenerationConfig) -> dict[str, Any]:
    """The part of an LLM run's report known before it starts; ``status`` is ``failed`` until it succeeds."""
    return {
        "status": "failed",
        "error": None,
        "backend": "openai",
        "model": llm.model,
        "base_url": llm.base_url,
        "config": {
            "scenarios": list(config.scenarios),
            "n": config.n,
            "seed": config.seed,
            "split": config.split,
        },
        "limits": {
            "max_tokens": llm.max_tokens,
            "timeout_s": llm.timeout_s,
            "max_retries": llm.max_retries,
            "concurrency": llm.concurrency,
            "max_candidates": llm.max_candidates,
        },
    }


def _write_report(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(
        out / REPORT_NAME, json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    )


def _release(args: argparse.Namespace, scenarios: list[str]) -> int:
    """Build the shipped release (every split at the release sizes, and the manifest) into ``--out``."""
    total = len(scenarios) * sum(RELEASE_SIZES.values())
    seed = RELEASE_SEED if args.seed is None else args.seed
    with Progress(total, "release") as progress:
        manifest = build_release(args.out, scenarios, seed, progress=progress.update)
    print(json.dumps(manifest["summary"], indent=2))
    return 0
