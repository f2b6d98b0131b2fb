"""Python ``logging`` for the command line: ftrl-gym's own INFO lines, third-party chatter quiet."""

from __future__ import annotations

import logging
import os
import sys

THIRD_PARTY_LOGGERS = (
    "vllm",
    "transformers",
    "ray",
    "httpx",
    "httpcore",
    "urllib3",
    "huggingface_hub",
    "datasets",
    "accelerate",
    "torch",
    "filelock",
    "wandb",
    "py.warnings",
)
"""Loggers held at ERROR unless ``--verbose``."""

THIRD_PARTY_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
    "WANDB_SILENT": "true",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TORCH_CPP_LOG_LEVEL": "ERROR",
}
"""Environment variables that libraries read at import time (vLLM also in its engine processes); set
only where the user has not set them."""

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""One line per record: time, level, logger and message."""


def configure_logging(verbose: bool = False) -> None:
    """Send log records to stderr: ftrl-gym's at INFO, other libraries' at ERROR unless ``verbose``.

    Call it once, from a command line, before vLLM, transformers or Ray are imported: vLLM reads
    ``VLLM_LOGGING_LEVEL`` when it is first imported and passes it to its engine processes.

    Args:
        verbose: Keep every library's INFO and WARNING records (and Python warnings) too.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=FORMAT, stream=sys.stderr)
    logging.getLogger("ftrl_gym").setLevel(logging.INFO)
    logging.captureWarnings(not verbose)
    level = logging.INFO if verbose else logging.ERROR
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if not verbose:
        for key, value in THIRD_PARTY_ENV.items():
            os.environ.setdefault(key, value)
