"""``ftrl-gym verl-data``: write an FTRL env's tasks as the parquet rows verl's trainer reads."""

from __future__ import annotations

import argparse

import gymnasium as gym
import pyarrow.parquet as pq

import ftrl_gym  # noqa: F401  (registers the FTRL ids)
from ftrl_gym.cli import user_error
from ftrl_gym.integrations.verl import (
    AGENT_NAME,
    CONFIG_DIR,
    reference_turns,
    write_parquet,
    write_turn_parquet,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``verl-data`` options to ``parser``."""
    parser.add_argument("--env", default="FTRL-MultiHop-v0", help="a registered FTRL env id")
    parser.add_argument("--split", default="train", choices=["train", "test"], help="dataset split")
    parser.add_argument(
        "--rows",
        default="turns",
        choices=["turns", "episodes"],
        help="turns: one row per assistant turn of each task's reference trajectory, its prefix as "
        "prompt (the paper's per-turn samples, played by verl's single_turn_agent); episodes: one "
        "row per task with agent_name=ftrl_agent (whole episodes played by FTRLAgentLoop)",
    )
    parser.add_argument(
        "--num-tasks", type=int, default=None, help="the first N tasks (default: all)"
    )
    parser.add_argument("--out", required=True, help="the .parquet file to write")


def run(args: argparse.Namespace) -> int:
    """Write the rows and say where the recipes are.

    Returns:
        0, or 2 when ``--num-tasks`` is not positive.
    """
    if args.num_tasks is not None and args.num_tasks < 1:
        return user_error("verl-data", f"--num-tasks must be at least 1, got {args.num_tasks}")
    env = gym.make(args.env, split=args.split)
    tasks = env.unwrapped.tasks[: args.num_tasks]
    env.close()
    if args.rows == "episodes":
        path = write_parquet(tasks, args.out, agent_name=AGENT_NAME)
    else:
        path = write_turn_parquet([(task, reference_turns(task)) for task in tasks], args.out)
    rows = pq.ParquetFile(path).metadata.num_rows
    print(f"wrote {rows} {args.rows} rows of {len(tasks)} {args.env} {args.split} tasks to {path}")
    print(f"verl configs: {CONFIG_DIR}")
    return 0
