"""Metric reporters beside ``metrics.jsonl``: TensorBoard event files and offline Weights & Biases runs."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

REPORT_TARGETS = ("tensorboard", "wandb")
"""What ``report_to`` may name (``none``, or an empty list, names none of them)."""

WANDB_PROJECT = "ftrl-gym"
"""The W&B project offline runs are filed under (``wandb sync`` uploads them there)."""


class MetricReporter(Protocol):
    """Where a run's per-step numbers go, besides ``metrics.jsonl``."""

    def log(self, namespace: str, values: Mapping[str, float], step: int) -> None:
        """Record ``values`` of one step under ``namespace`` (``train``, ``validation``, ``sft``)."""

    def close(self) -> None:
        """Flush and release the reporter's files."""


def scalar_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics row, as floats, without its ``step``.

    Args:
        metrics: One row of ``metrics.jsonl`` (numbers, and maybe strings or lists).

    Returns:
        Name to value for every int, float or bool entry but ``step``, NaN and infinities left out.
    """
    values = {}
    for name, value in metrics.items():
        if name == "step" or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            values[name] = float(value)
    return values


class TensorBoardReporter:
    """Scalars tagged ``namespace/name`` in TensorBoard event files under ``log_dir``.

    Args:
        log_dir: The folder of the event files (``RUN/tensorboard``).
    """

    def __init__(self, log_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def log(self, namespace: str, values: Mapping[str, float], step: int) -> None:
        """Write one step's scalars and flush them to disk."""
        for name, value in values.items():
            self._writer.add_scalar(f"{namespace}/{name}", value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        """Close the event file."""
        self._writer.close()


class WandbReporter:
    """A Weights & Biases run, offline unless the user's ``WANDB_MODE`` says otherwise.

    The run lives in ``RUN/wandb/offline-run-*``; ``wandb sync`` uploads it later.

    Args:
        run_dir: The training run's folder.
        config: The run's settings, stored as the W&B run config.
    """

    def __init__(self, run_dir: str | Path, config: Mapping[str, Any]) -> None:
        import wandb

        folder = Path(run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            project=WANDB_PROJECT,
            name=folder.resolve().name,
            dir=str(folder),
            config=dict(config),
            mode=os.environ.get("WANDB_MODE", "offline"),
            reinit="create_new",
        )

    def log(self, namespace: str, values: Mapping[str, float], step: int) -> None:
        """Log one step's values as ``namespace/name``."""
        self._run.log({f"{namespace}/{name}": value for name, value in values.items()}, step=step)

    def close(self) -> None:
        """Finish the run (it writes its last records to disk)."""
        self._run.finish()


def open_reporters(
    report_to: Sequence[str], run_dir: str | Path, config: Mapping[str, Any]
) -> list[MetricReporter]:
    """Open one reporter per entry of ``report_to``.

    Args:
        report_to: Entries of ``REPORT_TARGETS``.
        run_dir: The training run's folder; TensorBoard writes to ``run_dir/tensorboard``.
        config: The run's settings (W&B stores them with the run).

    Returns:
        The reporters, in the order named.

    Raises:
        ValueError: An entry is not in ``REPORT_TARGETS``.
    """
    reporters: list[MetricReporter] = []
    for target in report_to:
        if target == "tensorboard":
            reporters.append(TensorBoardReporter(Path(run_dir) / "tensorboard"))
        elif target == "wandb":
            reporters.append(WandbReporter(run_dir, config))
        else:
            raise ValueError(f"report_to holds {target!r}: use {', '.join(REPORT_TARGETS)} or none")
    return reporters
