"""``ftrl-gym eval``: Solve-P/R/F1 of one or more agents on the environments, resumable, with a report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ftrl_gym.agents.factory import AgentSettings, make_agent
from ftrl_gym.cli import missing_extra_message, user_error
from ftrl_gym.envs.registration import SCENARIO_IDS
from ftrl_gym.errors import FTRLError
from ftrl_gym.evaluation.results import STORE_NAME
from ftrl_gym.run_settings import claim_run_folder

SCENARIO_ENV_IDS = list(SCENARIO_IDS)
"""The four scenarios: the default ``--env``."""

PRESETS: dict[str, dict[str, Any]] = {
    "main": {
        "agent": ["oracle", "random", "hf"],
        "env": SCENARIO_ENV_IDS,
        "split": "test",
        "episodes": 2,
        "repeats": 1,
        "max_tokens": 64,
        "concurrency": 8,
        "out": "runs/main",
    },
}
"""Named argument sets; ``main`` is the README's command: SmolLM2 and the baselines, four scenarios."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval`` options to the subcommand's parser."""
    parser.add_argument(
        "--agent", nargs="+", metavar="AGENT",
        help="agents to evaluate, in order: oracle, random, openai, hf, vllm or module:Class "
        "(a class built with --agent-kwargs) [default: oracle]",
    )
    parser.add_argument("--env", nargs="+", metavar="ID", help="env ids [default: the four scenarios]")
    parser.add_argument("--split", choices=("train", "test"), help="dataset split [default: test]")
    parser.add_argument("--tasks", metavar="PATH", help="FTRL-format JSONL file for FTRL-Custom-v0")
    parser.add_argument("--episodes", type=int, metavar="N", help="tasks per env [default: all]")
    parser.add_argument("--repeats", type=int, metavar="K", help="episodes per task [default: 1]")
    parser.add_argument("--concurrency", type=int, metavar="C", help="episodes at once [default: 4]")
    parser.add_argument("--max-turns", type=int, default=20, help="turns before truncation [20]")
    parser.add_argument("--seed", type=int, default=0, help="env and random-agent seed [0]")
    parser.add_argument("--out", metavar="DIR", help="results folder; rerun to resume [runs/eval]")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="when --out holds results made with other settings, delete them instead of refusing",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named argument set (main: README)")
    parser.add_argument("--model", help="hf/vllm: 'smollm2', a .gguf or a folder; openai: model name")
    parser.add_argument("--base-url", help="openai: endpoint, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", help="openai: key [default: $OPENAI_API_KEY]")
    parser.add_argument("--max-tokens", type=int, help="tokens per turn for model agents [256]")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature [0: greedy]")
    parser.add_argument(
        "--agent-kwargs", default="{}",
        help="JSON keyword arguments: a module:Class agent's, or added to hf, vllm and openai's "
        "(e.g. '{\"max_model_len\": 8192}')",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """Fill unset options from ``--preset`` and then from the defaults."""
    defaults = {
        "agent": ["oracle"], "env": SCENARIO_ENV_IDS, "split": "test", "episodes": None,
        "repeats": 1, "concurrency": 4, "out": "runs/eval", "max_tokens": 256,
    }
    preset = PRESETS.get(args.preset or "", {})
    for name, default in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, preset.get(name, default))
    return args


OUTCOME_SETTINGS = ("seed", "max_turns", "model", "max_tokens", "temperature", "base_url", "agent_kwargs")
"""Options that change an episode's outcome but not its key in ``results.jsonl``: a rerun into the
same ``--out`` must keep them (``--agent``, ``--env``, ``--episodes``, ``--repeats`` only pick episodes)."""

RESULT_FILES = (STORE_NAME, "report.md", "report.json", "solve_f1.png")
"""What ``--overwrite`` deletes from an ``--out`` made with other settings."""


def outcome_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``OUTCOME_SETTINGS`` of resolved arguments, ``--agent-kwargs`` parsed.

    Raises:
        ValueError: ``--agent-kwargs`` is not JSON.
    """
    settings = {name: getattr(args, name) for name in OUTCOME_SETTINGS}
    try:
        settings["agent_kwargs"] = json.loads(args.agent_kwargs)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--agent-kwargs must be JSON, got {args.agent_kwargs!r} ({exc})") from exc
    return settings


def build_agent(spec: str, args: argparse.Namespace) -> Any:
    """Build the agent named by ``spec`` (see ``--agent``) from the command's options.

    Raises:
        AgentError: A model agent cannot load its model or reach its endpoint.
        ValueError: ``spec`` is neither a built-in name nor ``module:Class``.
    """
    settings = AgentSettings(
        model=args.model or None, max_tokens=args.max_tokens, temperature=args.temperature,
        seed=args.seed, concurrency=args.concurrency, base_url=args.base_url,
        api_key=args.api_key, agent_kwargs=json.loads(args.agent_kwargs),
    )
    return make_agent(spec, settings)


def run(args: argparse.Namespace) -> int:
    """Evaluate every ``--agent`` in turn, then print and write the report.

    Returns:
        0 on success; 2 for bad arguments, an unreachable endpoint or a bad model path.
    """
    from ftrl_gym.evaluation.harness import EvalConfig
    from ftrl_gym.evaluation.report import write_report
    from ftrl_gym.evaluation.results import ResultStore

    args = resolve_arguments(args)
    try:
        config = EvalConfig(
            env_ids=list(args.env), split=args.split, tasks=args.tasks, episodes=args.episodes,
            repeats=args.repeats, concurrency=args.concurrency, max_turns=args.max_turns,
            seed=args.seed,
        )
        claim_run_folder(args.out, outcome_settings(args), overwrite=args.overwrite, clear=RESULT_FILES)
        store = ResultStore(Path(args.out) / STORE_NAME)
        records = []
        for spec in args.agent:
            records.extend(_evaluate(spec, args, config, store))
    except (FTRLError, ValueError) as exc:
        return user_error("eval", exc)
    except ModuleNotFoundError as exc:
        return user_error("eval", missing_extra_message(exc))
    except ImportError as exc:
        return user_error(
            "eval", f"{exc}; the model agents need their extras, e.g. pip install "
            "'ftrl-gym[hf,openai]' (see docs/agents.md)"
        )
    _, table = write_report(records, args.out)
    print(table)
    chart = Path(args.out) / "solve_f1.png"
    chart_note = f"chart: {chart}" if chart.exists() else "chart: skipped (pip install matplotlib)"
    print(f"results: {store.path}  report: {Path(args.out) / 'report.md'}  {chart_note}")
    return 0


def _evaluate(spec: str, args: argparse.Namespace, config: Any, store: Any) -> list[dict[str, Any]]:
    from ftrl_gym.evaluation.harness import run_evaluation

    agent = build_agent(spec, args)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(desc=getattr(agent, "name", spec), unit="ep", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            if bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

    try:
        return run_evaluation(agent, config, store, progress)
    finally:
        if bar is not None:
            bar.close()
        close = getattr(agent, "close", None)
        if callable(close):
            close()
