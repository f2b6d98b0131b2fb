"""Read stored evaluation episodes as transcripts: each turn's response, reward and tool results.

A score says how much a model solved; the transcript says what it did instead (a missing argument
sent six times, the same call twice in one turn). Every episode the harness stores carries its
``trace``, so this works on any ``ftrl-gym eval`` results file or a pipeline's
``eval/<stage>/results.jsonl``:

    ftrl-gym episodes runs/pipeline/eval/grpo/results.jsonl --failed --limit 5
    ftrl-gym episodes runs/pipeline/eval/grpo/results.jsonl --task FTRL-SingleHop-v0/13
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from ftrl_gym.cli import user_error


def load_episodes(path: str | Path) -> list[dict[str, Any]]:
    """The episode records of a results JSONL file, in file order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} does not exist: pass a results.jsonl written by the harness"
        )
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def select(
    records: list[dict[str, Any]],
    task: str | None = None,
    failed: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The records to show.

    Args:
        records: Episode records.
        task: Keep episodes whose ``env/task_index`` starts with this (``FTRL-MultiHop-v0`` keeps
            the env, ``FTRL-MultiHop-v0/13`` one task).
        failed: Keep episodes with Solve-F1 below 1.
        limit: Keep at most this many.
    """
    kept = [
        r
        for r in records
        if (task is None or f"{r['env']}/{r['task_index']}".startswith(task))
        and (not failed or r["solve_f1"] < 1.0)
    ]
    return kept if limit is None else kept[:limit]


def format_episode(record: dict[str, Any]) -> str:
    """One episode as text: a header with its scores, the question, the answers, then each turn
    (the response as written, ``->`` each tool result, ``!!`` each block that did not parse).

    Raises:
        KeyError: The record has no ``trace`` (stored by a harness older than the traces).
    """
    if "trace" not in record:
        raise KeyError(
            f"episode {record['env']}/{record['task_index']} has no trace: it was stored before "
            "the harness recorded turns; evaluate again into a new results file"
        )
    header = (
        f"== {record['env']}/{record['task_index']} (repeat {record['repeat']}): "
        f"Solve-F1 {record['solve_f1']:.2f}, {record['solved']} of {record['total_answers']} "
        f"answers, {record['tool_calls']} calls, {record['turns']} turns"
    )
    lines = [
        header,
        f"question: {record.get('question', '')}",
        f"answers:  {json.dumps(record.get('answers'))}",
    ]
    for number, turn in enumerate(record["trace"], start=1):
        lines.append(
            f"-- turn {number}: reward {turn['reward']:+.2f} ({turn['branch']}; "
            f"{turn['calls']} calls, {turn['solved']} solved)"
        )
        lines += textwrap.indent(turn["response"].strip() or "(empty)", "   | ").splitlines()
        lines += [f"   -> {result}" for result in turn["results"]]
        lines += [f"   !! {error}" for error in turn["parse_errors"]]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``ftrl-gym episodes`` arguments to ``parser``."""
    parser.add_argument("results", help="a results.jsonl of ftrl-gym eval or a pipeline stage")
    parser.add_argument("--task", help="ENV or ENV/INDEX prefix, e.g. FTRL-SingleHop-v0/13")
    parser.add_argument("--failed", action="store_true", help="only episodes below Solve-F1 1")
    parser.add_argument("--limit", type=int, help="show at most this many episodes")


def run(args: argparse.Namespace) -> int:
    """Print the chosen transcripts; exit status 2 with one line when the file cannot be read."""
    try:
        records = load_episodes(args.results)
    except (OSError, ValueError) as exc:
        return user_error("episodes", f"cannot read {args.results}: {exc}")
    chosen = select(records, args.task, args.failed, args.limit)
    print("\n\n".join(format_episode(r) for r in chosen) or "no episode matches")
    return 0
