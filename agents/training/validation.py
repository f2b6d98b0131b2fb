"""Greedy validation during RL: held-out train-split tasks, Solve-P/R/F1, and the best model so far.

The RL data are the first ``train_tasks`` indices of each env's train split; validation takes tasks
spread over the indices after them, so no validation task is ever trained on and the test split is
never looked at. Picking the checkpoint by validation Solve-F1 is model selection on held-out data;
the pipeline then scores the chosen model on the test split once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ftrl_gym.agents.training.rollout import Episode, EpisodeSpec, mean_metrics
from ftrl_gym.atomic import write_text_atomically

BEST_FILE = "best.json"
"""Beside ``best/``: the step, and the validation scores that made it the best."""


def validation_indices(num_tasks: int, train_tasks: int, count: int) -> list[int]:
    """``count`` task indices spread evenly over ``[train_tasks, num_tasks)`` (the untrained tail).

    Args:
        num_tasks: Tasks in the env's train split.
        train_tasks: Indices below this are RL data.
        count: Validation tasks wanted.

    Returns:
        Sorted distinct indices; fewer than ``count`` when the tail is shorter.

    Raises:
        ValueError: No task is left after the training ones.
    """
    free = num_tasks - train_tasks
    if free <= 0:
        raise ValueError(
            f"validation needs train tasks beyond the {train_tasks} used for RL, and this env has "
            f"{num_tasks}: lower train_tasks or set val_every=0"
        )
    taken = min(count, free)
    return [train_tasks + i * free // taken for i in range(taken)]


def validation_specs(
    env_ids: Sequence[str],
    num_tasks: Callable[[str], int],
    train_tasks: int,
    count: int,
    seed: int,
) -> list[EpisodeSpec]:
    """One greedy episode per validation task of each env, with a fixed reset seed (same every time).

    Args:
        env_ids: The envs trained on.
        num_tasks: Tasks in an env's train split (``EnvPool.num_tasks``).
        train_tasks: RL tasks per env (the first indices).
        count: Validation tasks per env.
        seed: Reset seed of every validation episode.
    """
    return [
        EpisodeSpec(env_id, index, seed, f"val/{env_id}/{index}")
        for env_id in env_ids
        for index in validation_indices(num_tasks(env_id), train_tasks, count)
    ]


def validation_summary(step: int, episodes: Sequence[Episode]) -> dict[str, Any]:
    """Mean episode Solve-P/R/F1 and tool calls per episode of one validation pass.

    Args:
        step: Optimiser steps the validated policy has taken (0: the starting model).
        episodes: The finished greedy episodes.

    Returns:
        ``{"step", "solve_p", "solve_r", "solve_f1", "calls_per_episode", "episodes"}``.
    """
    means = mean_metrics(episodes, ("solve_p", "solve_r", "solve_f1", "calls"))
    calls = means.pop("calls")
    return {"step": step, **means, "calls_per_episode": calls, "episodes": len(episodes)}


def best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The validation row with the highest Solve-F1; on a tie the earliest step (the smaller change)."""
    best: dict[str, Any] | None = None
    for row in sorted(rows, key=lambda r: int(r["step"])):
        if best is None or float(row["solve_f1"]) > float(best["solve_f1"]):
            best = row
    return best


def read_best(run_dir: str | Path) -> dict[str, Any] | None:
    """The ``best.json`` of an RL run folder, or None when the run kept no best model."""
    path = Path(run_dir) / BEST_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_best(run_dir: Path, row: dict[str, Any]) -> None:
    """Record which step ``best/`` holds (written after the model folder is in place)."""
    write_text_atomically(run_dir / BEST_FILE, json.dumps(row, indent=2))
