"""The ``ftrl-gym`` command line: a thin dispatcher to one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn

from ftrl_gym.logs import configure_logging

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("ftrl_gym.generation.cli", "build tool environments with the five-stage pipeline"),
    "eval": ("ftrl_gym.evaluation.eval_cli", "measure Solve-P/R/F1 of an agent on the environments"),
    "train": ("ftrl_gym.agents.training.cli", "train a policy with GRPO or Reinforce++ on the environments"),
    "episodes": ("ftrl_gym.evaluation.show_episodes", "print stored evaluation episodes as transcripts"),
    "verl-data": ("ftrl_gym.integrations.verl_cli", "write an env's tasks as verl parquet rows"),
}

EXTRAS: dict[str, str] = {
    "accelerate": "train",
    "gguf": "train",
    "huggingface_hub": "train",
    "matplotlib": "eval",
    "openai": "openai",
    "ray": "rllib",
    "tensorboard": "logging",
    "torch": "train",
    "transformers": "train",
    "trl": "trl",
    "vllm": "cpu",
    "wandb": "logging",
    "yaml": "train",
}
"""The optional extra (``pip install 'ftrl-gym[EXTRA]'``) that brings each optional top-level module."""

USER_ERROR_STATUS = 2
"""Exit status of every user error: bad arguments, settings, files or a missing extra."""


def user_error(command: str, message: object) -> int:
    """Report a user error the way every subcommand does, and return its exit status.

    Prints ``ftrl-gym COMMAND: error: MESSAGE`` on stderr, the message's whitespace (line breaks
    included) collapsed, so the error is one line, as ``OneLineParser``'s are.

    Args:
        command: The subcommand as typed (``eval``, ``train plan``).
        message: The error (an exception or a text).

    Returns:
        ``USER_ERROR_STATUS``.
    """
    print(f"ftrl-gym {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return USER_ERROR_STATUS


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE`` and exit with status 2."""
        self.exit(USER_ERROR_STATUS, f"{self.prog}: error: {message}\n")


def missing_extra_message(exc: ModuleNotFoundError) -> str:
    """Say which module is missing and which extra installs it.

    Args:
        exc: The import failure.

    Returns:
        A one-line message naming the module and the extra (or the module itself when it is not
        one of ``EXTRAS``).
    """
    module = (exc.name or str(exc)).split(".")[0]
    if module == "vllm":
        return (
            "the vllm module is missing: pip install 'ftrl-gym[cpu]' (CPU machines) or "
            "'ftrl-gym[vllm]' (CUDA GPUs)"
        )
    extra = EXTRAS.get(module)
    if extra is None:
        return f"the {module} module is missing: pip install {module}"
    return f"the {module} module is missing: pip install 'ftrl-gym[{extra}]'"


def package_version() -> str:
    """The installed ftrl-gym version (``unknown`` when the package metadata is absent)."""
    try:
        return metadata.version("ftrl-gym")
    except metadata.PackageNotFoundError:
        return "unknown"


def _load(module_name: str, command: str):
    """Import a subcommand module, turning a missing optional dependency into a one-line exit 2."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        _fail(command, missing_extra_message(exc))


def _fail(command: str, message: str) -> NoReturn:
    print(f"ftrl-gym {command}: error: {message}", file=sys.stderr)
    raise SystemExit(USER_ERROR_STATUS)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser, importing only the module of the subcommand being run.

    Args:
        argv: The command-line arguments without the program name.

    Returns:
        A parser whose chosen subcommand has its ``run`` function as the ``func`` default.
    """
    parser = OneLineParser(prog="ftrl-gym", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ftrl-gym {package_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = _load(module_name, name)
            module.add_arguments(sub)
            if name != "generate":
                sub.add_argument(
                    "--verbose", action="store_true",
                    help="show other libraries' INFO and WARNING logs (vLLM, transformers, Ray, httpx)",
                )
            sub.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ftrl-gym`` command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit status: 0 on success, 2 for a user error (one line on stderr).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    if args.command == "generate":
        return int(args.func(args) or 0)
    configure_logging(verbose=args.verbose)
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        print(f"ftrl-gym {args.command}: error: {missing_extra_message(exc)}", file=sys.stderr)
        return USER_ERROR_STATUS


if __name__ == "__main__":
    sys.exit(main())
