"""Pipeline runs side by side: each RL stage's Solve-F1 gain over its SFT start, per run and over runs.

One run of ``ftrl-gym train pipeline`` is one seed: its gain carries that seed's SFT start and sampling
luck, so a claim about an RL recipe needs several. This reads the runs' ``results.json`` and
``config.json`` and prints, per run, the SFT score and each RL stage's paired gain (95% CI over the
run's test tasks), then per stage the mean gain over runs with a 95% t-interval over runs, and how many
runs reached ``--target`` points. Last, what each stage's model did over the test episodes: answers
obtained, tool calls made, and answers per call, because Solve-F1 = 2S/(C + T) falls when calls (C)
grow faster than answers (S). For RL stages trained with ``val_every``, the greedy validation curve
and the step the test row scored.

    python -m benchmarks.training_seeds runs/seed0 runs/seed1 runs/seed2 --target 10

A run folder holds about 1 GB of model weights per stage; ``--archive DEST`` copies what these tables
read (settings, rows, per-episode records gzipped, validation and metrics logs: tens of KB) into
``DEST/<run>``, a folder this script reads like the run itself, so a result can be kept in the
repository and combined with seeds run later.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftrl_gym.agents.training.pipeline import paired_gain, task_key
from ftrl_gym.evaluation.results import STORE_NAME
from ftrl_gym.evaluation.stats import mean_ci


ARCHIVED_FILES = (
    "config.json", "results.json", "results.md", "*/validation.jsonl", "*/metrics.jsonl", "*/best.json",
)
"""What ``--archive`` copies as it is (globs under the run folder), beside the gzipped episode stores."""


@dataclass(frozen=True)
class Run:
    """One pipeline run folder.

    Attributes:
        label: The folder's name.
        seed: ``config.json``'s seed.
        rows: ``results.json``: stage name to evaluation summary.
        folder: The run folder (its ``eval/<stage>/results.jsonl`` hold the episodes).
    """

    label: str
    seed: int
    rows: dict[str, dict[str, Any]]
    folder: Path = Path()


def load_run(folder: str | Path) -> Run:
    """Read a pipeline run folder.

    Raises:
        FileNotFoundError: The folder has no ``results.json`` (the pipeline has not evaluated yet).
    """
    path = Path(folder)
    results = path / "results.json"
    if not results.is_file():
        raise FileNotFoundError(f"{results} does not exist: is {path} an ftrl-gym pipeline run?")
    config = path / "config.json"
    seed = json.loads(config.read_text()).get("seed", 0) if config.is_file() else 0
    return Run(path.name, int(seed), json.loads(results.read_text()), path)


def rl_stages(runs: list[Run], base: str = "sft") -> list[str]:
    """The stages after ``base`` that any run has, in first-seen order."""
    stages: list[str] = []
    for run in runs:
        names = list(run.rows)
        after = names[names.index(base) + 1 :] if base in names else []
        stages += [s for s in after if s not in stages]
    return stages


def stage_gain(run: Run, stage: str, base: str = "sft") -> dict[str, Any] | None:
    """``paired_gain`` of ``stage`` over ``base`` in one run (None when either is missing)."""
    if base not in run.rows or stage not in run.rows:
        return None
    return paired_gain(run.rows[base]["per_task"], run.rows[stage]["per_task"])


def seeds_table(runs: list[Run], base: str = "sft") -> str:
    """Markdown: one row per run with the base score, each stage's score, gain and CI (x100), the
    run's wall time (its stages' sum) and peak memory (its largest stage's, where recorded)."""
    stages = rl_stages(runs, base)
    header = ["run", "seed", base, *stages, "wall min", "peak GB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        cells = [run.label, str(run.seed), _points(run.rows.get(base, {}).get("solve_f1"))]
        for stage in stages:
            gain = stage_gain(run, stage, base)
            if gain is None:
                cells.append("-")
                continue
            cells.append(
                f"{100 * run.rows[stage]['solve_f1']:.1f} ({100 * gain['gain']:+.1f}, "
                f"[{100 * gain['low']:+.1f}, {100 * gain['high']:+.1f}])"
            )
        wall, peak = run_cost(run)
        cells += [f"{wall / 60:.0f}", f"{peak:.2f}" if peak is not None else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_cost(run: Run) -> tuple[float, float | None]:
    """The run's wall seconds (its stages' ``wall_s`` summed) and peak memory in GB (the largest
    stage ``peak_memory_gb``; None when no stage recorded one)."""
    wall = sum(float(row.get("wall_s", 0.0)) for row in run.rows.values())
    peaks = [float(row["peak_memory_gb"]) for row in run.rows.values() if row.get("peak_memory_gb")]
    return wall, max(peaks) if peaks else None


def across_runs(runs: list[Run], target: float, base: str = "sft") -> dict[str, dict[str, Any]]:
    """Per stage: the mean gain over runs (points), its 95% t-interval over runs, and hits of ``target``.

    Returns:
        Stage to ``{"runs", "mean", "low", "high", "reached"}``; the interval needs two runs or more
        (with one, ``low`` and ``high`` equal the mean).
    """
    summary = {}
    for stage in rl_stages(runs, base):
        gains = [g["gain"] * 100 for r in runs if (g := stage_gain(r, stage, base)) is not None]
        estimate = mean_ci(gains)
        summary[stage] = {
            "runs": len(gains),
            "mean": estimate.mean,
            "low": estimate.low,
            "high": estimate.high,
            "reached": sum(g >= target for g in gains),
        }
    return summary


def across_text(summary: dict[str, dict[str, Any]], target: float) -> str:
    """One line per stage of ``across_runs``."""
    return "\n".join(
        f"- {stage}: mean gain {s['mean']:+.1f} points over {s['runs']} runs, 95% CI over runs "
        f"[{s['low']:+.1f}, {s['high']:+.1f}]; {s['reached']} of {s['runs']} reached "
        f"{target:+.0f}"
        for stage, s in summary.items()
    )


def stage_behaviour(run: Run, stage: str) -> dict[str, int] | None:
    """Answers obtained, answers to obtain and tool calls, summed over the episodes of ``stage``'s row.

    Reads ``eval/<stage>/results.jsonl`` (or its ``--archive`` copy, ``results.jsonl.gz``) and keeps
    the episodes the row scored (its ``per_task`` keys, ``env/task_index/repeat``). None when the
    stage or its episodes are missing.
    """
    lines = _episode_lines(run.folder / "eval" / stage)
    if stage not in run.rows or lines is None:
        return None
    keys = set(run.rows[stage].get("per_task", {}))
    totals = {"solved": 0, "total_answers": 0, "tool_calls": 0, "episodes": 0}
    for line in lines:
        record = json.loads(line)
        if task_key(record) not in keys:
            continue
        totals["episodes"] += 1
        for name in ("solved", "total_answers", "tool_calls"):
            totals[name] += int(record[name])
    return totals if totals["episodes"] else None


def _episode_lines(folder: Path) -> list[str] | None:
    """The lines of ``folder``'s episode store, plain or gzipped; None when it has neither."""
    plain, packed = folder / STORE_NAME, folder / f"{STORE_NAME}.gz"
    if plain.is_file():
        return plain.read_text().splitlines()
    if packed.is_file():
        return gzip.decompress(packed.read_bytes()).decode().splitlines()
    return None


def archive_run(run: Run, dest: str | Path) -> Path:
    """Copy what this script reads of ``run`` into ``dest/<run.label>``, episode stores gzipped.

    Kept: ``config.json``, ``results.json``, ``results.md``, each stage folder's ``validation.jsonl``,
    ``metrics.jsonl`` and ``best.json``, and ``eval/<stage>/results.jsonl`` as ``results.jsonl.gz``;
    model weights and checkpoints are left behind, and so is every file of a stage that has no row
    in ``results.json`` yet (one still training or evaluating: its curve and episodes are partial).
    Archiving the run again once that stage has finished adds it.

    Returns:
        The archive folder, which :func:`load_run` reads like the run folder; ``run`` itself, left as
        it is, when it already is that folder (an archived seed listed beside new ones).
    """
    target = Path(dest) / run.label
    if target.resolve() == run.folder.resolve():
        return target
    for name in ARCHIVED_FILES:
        for source in _finished_files(run, name):
            copy = target / source.relative_to(run.folder)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
    for source in _finished_files(run, f"eval/*/{STORE_NAME}"):
        copy = target / source.relative_to(run.folder).with_name(f"{STORE_NAME}.gz")
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(gzip.compress(source.read_bytes(), mtime=0))
    return target


def _finished_files(run: Run, pattern: str) -> list[Path]:
    """The files of ``run`` matching ``pattern``, sorted: top-level ones, and those of a stage
    (``<stage>/...`` or ``eval/<stage>/...``) that has a results row."""

    def finished(source: Path) -> bool:
        parts = source.relative_to(run.folder).parts
        return len(parts) == 1 or (parts[1] if parts[0] == "eval" else parts[0]) in run.rows

    return [source for source in sorted(run.folder.glob(pattern)) if finished(source)]


def behaviour_table(runs: list[Run], base: str = "sft") -> str:
    """Markdown: per run and stage from ``base`` on, answers obtained of all, calls, answers per call."""
    lines = [
        "| run | stage | answers obtained | tool calls | answers per call |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        for stage in [base, *rl_stages([run], base)]:
            counts = stage_behaviour(run, stage)
            if counts is None:
                continue
            per_call = counts["solved"] / counts["tool_calls"] if counts["tool_calls"] else 0.0
            lines.append(
                f"| {run.label} | {stage} | {counts['solved']} of {counts['total_answers']} | "
                f"{counts['tool_calls']} | {per_call:.2f} |"
            )
    return "\n".join(lines)


def validation_curve(run: Run, stage: str) -> list[tuple[int, float]]:
    """``(step, validation Solve-F1)`` of an RL stage trained with ``val_every`` (empty without)."""
    path = run.folder / stage / "validation.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted((int(r["step"]), float(r["solve_f1"])) for r in rows)


def validation_table(runs: list[Run], base: str = "sft") -> str:
    """Markdown: per run and RL stage, greedy validation Solve-F1 (x100) by step, and the step whose
    model the test row scored (``rl_eval_model=best``; ``final`` otherwise)."""
    lines = ["| run | stage | validation Solve-F1 by step | test row scores |", "|---|---|---|---|"]
    for run in runs:
        for stage in rl_stages([run], base):
            curve = validation_curve(run, stage)
            if not curve:
                continue
            steps = ", ".join(f"{step}: {100 * f1:.1f}" for step, f1 in curve)
            chosen = run.rows[stage].get("selected_step")
            scored = "final" if chosen is None else f"step {chosen}"
            lines.append(f"| {run.label} | {stage} | {steps} | {scored} |")
    return "\n".join(lines)


def _points(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="pipeline run folders (one per seed)")
    parser.add_argument("--target", type=float, default=10.0, help="gain to count, in points")
    parser.add_argument("--base", default="sft", help="the stage gains are measured from")
    parser.add_argument(
        "--archive", metavar="DEST", help="also copy each run's numbers (no weights) into DEST/<run>"
    )
    args = parser.parse_args()
    runs = [load_run(folder) for folder in args.runs]
    for run in runs if args.archive else []:
        print(f"archived {run.folder} -> {archive_run(run, args.archive)}")
    print(seeds_table(runs, args.base))
    print()
    print(across_text(across_runs(runs, args.target, args.base), args.target))
    for table in (behaviour_table(runs, args.base), validation_table(runs, args.base)):
        if table.count("\n") > 1:
            print()
            print(table)


if __name__ == "__main__":
    main()
