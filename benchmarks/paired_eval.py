"""Models side by side on the same test episodes: Solve-F1, paired gains over the first, and behaviour.

A pipeline run scores each stage on ``eval_episodes`` test tasks per scenario (15 in ``cpu_long``), too
few to tell a 4-point gain from noise. This scores any number of model folders on a larger, shared
set of test tasks with the pipeline's own greedy evaluation (``evaluate_model``), then prints each
model's Solve-F1 with its paired gain over the first model (95% t-interval over tasks), the answers it
obtained and the tool calls it made, and its Solve-F1 per scenario. Episodes are stored under
``OUT/eval/<name>/results.jsonl``; a rerun reuses them and plays only what is missing. An episode
is stored under its agent's name, which holds the model folder's name (``vllm:best``): the same
weights given by a folder of another name are played again.

    python -m benchmarks.paired_eval --out runs/s1_eval50 --seed 1 --episodes 50 \\
        sft=runs/pipeline_seed1/sft/model grpo=runs/s1_val/grpo/best
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.pipeline import SCENARIO_COLUMNS, evaluate_model
from benchmarks.training_seeds import Run, behaviour_table, seeds_table


def parse_models(items: list[str]) -> dict[str, str]:
    """``NAME=MODEL`` arguments to an ordered name → model mapping.

    Raises:
        ValueError: An item has no ``=``, an empty side, or a name used twice.
    """
    models: dict[str, str] = {}
    for item in items:
        name, sep, model = item.partition("=")
        if not sep or not name or not model:
            raise ValueError(f"{item!r} is not NAME=MODEL (e.g. sft=runs/seed1/sft/model)")
        if name in models:
            raise ValueError(f"model name {name!r} is given twice")
        models[name] = model
    return models


def scenario_table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown: Solve-F1 (x100) of each model per scenario."""
    lines = [
        "| model | " + " | ".join(SCENARIO_COLUMNS.values()) + " |",
        "|---|" + "---:|" * len(SCENARIO_COLUMNS),
    ]
    for name, row in rows.items():
        cells = [f"{100 * row['per_scenario'][s]:.1f}" for s in SCENARIO_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models", nargs="+", help="NAME=MODEL (a transformers folder); the first is the base"
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the stored episodes")
    parser.add_argument(
        "--preset", default="cpu_long", help="training preset whose eval_* settings apply"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation (as the run's)")
    parser.add_argument("--episodes", type=int, default=50, help="test tasks per scenario")
    args = parser.parse_args()
    try:
        models = parse_models(args.models)
    except ValueError as error:
        parser.error(str(error))
    if len(models) < 2:
        parser.error("give at least two models: the base and one to compare with it")
    config = build_config(
        args.preset, overrides={"seed": args.seed, "eval_episodes": args.episodes}
    )
    rows = {
        name: evaluate_model(model, config, args.out / "eval" / name)
        for name, model in models.items()
    }
    run = Run(args.out.name, args.seed, rows, args.out)
    base = next(iter(models))
    print(seeds_table([run], base))
    print()
    print(behaviour_table([run], base))
    print()
    print(scenario_table(rows))
    summary = {
        name: {k: v for k, v in row.items() if k != "per_task"} for name, row in rows.items()
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
