"""Summaries of episode records: per env/scenario/agent rows, as Markdown, JSON and a PNG chart."""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ftrl_gym.evaluation.stats import Estimate, clustered_mean_ci, mean

SOLVE_METRICS = ("solve_p", "solve_r", "solve_f1")
ALL_SCENARIOS = "all"


@dataclass(frozen=True)
class SummaryRow:
    """The results of one agent on one env (and one scenario of it).

    Attributes:
        agent: The agent's label.
        env: The env id.
        scenario: The tasks' scenario, or ``"all"`` for every scenario of a mixed env.
        episodes: Episodes summarised (tasks x repeats).
        tasks: Distinct tasks among them.
        solve_p: Solve-P, mean and 95% CI (over tasks; repeats of a task are averaged first).
        solve_r: Solve-R, likewise.
        solve_f1: Solve-F1, likewise.
        tool_calls: Mean tool calls per episode.
        turns: Mean assistant turns per episode.
        format_error_rate: Turns with a malformed tool call / all turns.
        tokens: Mean tokens (prompt + completion) per episode; 0 for agents that do not report them.
        wall_s: Mean wall-clock seconds per episode.
        accuracy: Share of episodes a call scorer accepted (BFCL's accuracy: its checker accepted
            the response); None for tasks scored by their answers.
    """

    agent: str
    env: str
    scenario: str
    episodes: int
    tasks: int
    solve_p: Estimate
    solve_r: Estimate
    solve_f1: Estimate
    tool_calls: float
    turns: float
    format_error_rate: float
    tokens: float
    wall_s: float
    accuracy: float | None = None


def summarize(records: Sequence[dict[str, Any]]) -> list[SummaryRow]:
    """Group records by (env, scenario, agent) and summarise each group.

    An env whose records span several scenarios (``FTRL-Mixed-v0``, custom files) also gets an
    ``"all"`` row. Rows keep the order in which envs, scenarios and agents first appear.

    Args:
        records: Episode records as ``ftrl_gym.evaluation.harness`` stores them.

    Returns:
        One ``SummaryRow`` per group.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    scenarios: dict[str, list[str]] = {}
    for record in records:
        env, scenario = record["env"], record["scenario"]
        groups.setdefault((env, scenario, record["agent"]), []).append(record)
        if scenario not in scenarios.setdefault(env, []):
            scenarios[env].append(scenario)
    for env, names in scenarios.items():
        if len(names) > 1:
            for record in records:
                if record["env"] == env:
                    groups.setdefault((env, ALL_SCENARIOS, record["agent"]), []).append(record)
    agents = list(dict.fromkeys(r["agent"] for r in records))
    order = {(env, s): i for i, (env, s) in enumerate(
        (env, s) for env, names in scenarios.items() for s in [*names, ALL_SCENARIOS]
    )}
    keys = sorted(groups, key=lambda k: (order[(k[0], k[1])], agents.index(k[2])))
    return [_summarize_group(key, groups[key]) for key in keys]


def _summarize_group(key: tuple[str, str, str], records: list[dict[str, Any]]) -> SummaryRow:
    env, scenario, agent = key
    by_task: dict[Any, list[dict[str, Any]]] = {}
    for record in records:
        by_task.setdefault((record.get("tasks"), record["task_index"]), []).append(record)
    estimates = {
        metric: clustered_mean_ci({t: [r[metric] for r in rs] for t, rs in by_task.items()})
        for metric in SOLVE_METRICS
    }
    turns = sum(r["turns"] for r in records)
    return SummaryRow(
        agent=agent,
        env=env,
        scenario=scenario,
        episodes=len(records),
        tasks=len(by_task),
        **estimates,
        tool_calls=mean(r["tool_calls"] for r in records),
        turns=mean(r["turns"] for r in records),
        format_error_rate=sum(r["format_errors"] for r in records) / turns if turns else 0.0,
        tokens=mean(r["prompt_tokens"] + r["completion_tokens"] for r in records),
        wall_s=mean(r["wall_s"] for r in records),
        accuracy=_accuracy(records),
    )


def _accuracy(records: list[dict[str, Any]]) -> float | None:
    """Share of accepted episodes, when every record was judged by a call scorer."""
    verdicts = [r.get("accepted") for r in records]
    if not verdicts or any(v is None for v in verdicts):
        return None
    return sum(bool(v) for v in verdicts) / len(verdicts)


def _ci(estimate: Estimate) -> str:
    if math.isnan(estimate.mean):
        return "–"
    return f"{estimate.mean:.3f} ± {estimate.half_width:.3f}"


def to_markdown(rows: Sequence[SummaryRow]) -> str:
    """A Markdown table of the rows (Solve metrics as ``mean ± 95% CI half-width``); when some rows
    were judged by a call scorer, an ``accuracy`` column (BFCL's accuracy) follows Solve-F1."""
    scored = any(row.accuracy is not None for row in rows)
    header = (
        "| env | scenario | agent | episodes | Solve-P | Solve-R | Solve-F1 | "
        + ("accuracy | " if scored else "")
        + "calls/ep | turns/ep | format err | tokens/ep | s/ep |"
    )
    lines = [header, "|" + "---|" * (13 if scored else 12)]
    for row in rows:
        accuracy = ("n/a | " if row.accuracy is None else f"{row.accuracy:.1%} | ") if scored else ""
        lines.append(
            f"| {row.env} | {row.scenario} | {row.agent} | {row.episodes} | {_ci(row.solve_p)} "
            f"| {_ci(row.solve_r)} | {_ci(row.solve_f1)} | {accuracy}{row.tool_calls:.2f} | {row.turns:.2f} "
            f"| {row.format_error_rate:.1%} | {row.tokens:.0f} | {row.wall_s:.2f} |"
        )
    return "\n".join(lines) + "\n"


def to_json(rows: Sequence[SummaryRow]) -> list[dict[str, Any]]:
    """The rows as JSON-safe dicts; each estimate as ``{mean, half_width, n, low, high}``."""
    result = []
    for row in rows:
        data = asdict(row)
        for metric in SOLVE_METRICS:
            estimate: Estimate = getattr(row, metric)
            data[metric] = {**asdict(estimate), "low": estimate.low, "high": estimate.high}
        result.append(data)
    return result


def plot_solve_f1(rows: Sequence[SummaryRow], path: str | Path) -> Path:
    """Save a PNG of Solve-F1 per env/scenario, agents side by side, with 95% CI error bars.

    Args:
        rows: Summary rows (``"all"`` rows of mixed envs are shown as their own group).
        path: The PNG file to write.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(_group_label(r) for r in rows))
    agents = list(dict.fromkeys(r.agent for r in rows))
    width = 0.8 / max(len(agents), 1)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 4.5))
    for i, agent in enumerate(agents):
        cells = {_group_label(r): r.solve_f1 for r in rows if r.agent == agent}
        xs = [g + (i - (len(agents) - 1) / 2) * width for g in range(len(groups))]
        means = [cells[name].mean if name in cells else 0.0 for name in groups]
        errors = [cells[name].half_width if name in cells else 0.0 for name in groups]
        axes.bar(xs, means, width, yerr=errors, capsize=3, label=agent)
    axes.set_xticks(range(len(groups)), groups, rotation=20, ha="right")
    axes.set_ylabel("Solve-F1 (mean, 95% CI)")
    axes.set_ylim(0, 1.1)
    axes.legend(fontsize="small")
    axes.set_title("Solve-F1 per scenario")
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target


def _group_label(row: SummaryRow) -> str:
    """The chart's x label: the scenario, prefixed with the env for mixed and custom envs."""
    short = row.env.removeprefix("FTRL-").removesuffix("-v0")
    if short in ("Mixed", "Custom") or row.scenario == ALL_SCENARIOS:
        return f"{short}/{row.scenario}"
    return row.scenario


def write_report(records: Sequence[dict[str, Any]], out_dir: str | Path) -> tuple[list[SummaryRow], str]:
    """Write ``report.md``, ``report.json`` and ``solve_f1.png`` into ``out_dir``.

    The chart needs matplotlib (the ``eval`` extra); without it the chart is skipped.

    Args:
        records: The episode records to summarise.
        out_dir: The run's folder.

    Returns:
        The summary rows and the Markdown table.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = summarize(records)
    table = to_markdown(rows)
    (folder / "report.md").write_text(
        "# Evaluation\n\nSolve metrics: mean ± half-width of the 95% Student-t interval over tasks "
        "(repeats of a task averaged first).\n\n" + table,
        encoding="utf-8",
    )
    (folder / "report.json").write_text(json.dumps(to_json(rows), indent=2), encoding="utf-8")
    if rows and importlib.util.find_spec("matplotlib") is not None:
        plot_solve_f1(rows, folder / "solve_f1.png")
    return rows, table
