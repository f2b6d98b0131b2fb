"""The ``ftrl-gym`` command line: a thin dispatcher to one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("ftrl_gym.generation.cli", "build tool environments with the five-stage pipeline"),
    "eval": ("ftrl_gym.evaluation.eval_cli", "measure Solve-P/R/F1 of an agent on the environments"),
    "train": ("ftrl_gym.agents.training.cli", "train a policy with GRPO or Reinforce++ on the environments"),
    "episodes": ("ftrl_gym.evaluation.show_episodes", "print stored evaluation episodes as transcripts"),
    "verl-data": ("ftrl_gym.integrations.verl_cli", "write an env's tasks as verl parquet rows"),
}


def _load(module_name: str, command: str):
    """Import a subcommand module, turning a missing optional dependency into a clear message."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SystemExit(
            f"ftrl-gym {command}: cannot import {module_name} ({exc}). "
            f"Install the extra it needs, e.g. pip install -e '.[all]'."
        ) from exc


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser, importing only the module of the subcommand being run.

    Args:
        argv: The command-line arguments without the program name.

    Returns:
        A parser whose chosen subcommand has its ``run`` function as the ``func`` default.
    """
    parser = argparse.ArgumentParser(prog="ftrl-gym", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text)
        if name == chosen:
            module = _load(module_name, name)
            module.add_arguments(sub)
            sub.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ftrl-gym`` command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit status.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
