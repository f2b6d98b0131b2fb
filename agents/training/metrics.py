"""Per-step training metrics: an append-only JSONL log and a PNG of the curves."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftrl_gym.agents.training.reporting import MetricReporter, scalar_values

CURVES = (
    "reward",
    "solve_f1",
    "penalty_only_share",
    "kl",
    "entropy",
    "clip_fraction",
    "grad_norm",
    "tokens_per_s",
)
"""The metrics drawn in ``curves.png``, one panel each."""


class MetricsLog:
    """One JSON object per training step, flushed to disk as it is written, and passed on to reporters.

    Args:
        path: The ``.jsonl`` file.
        reporters: Where each row's numbers also go (TensorBoard, W&B; see ``reporting``).
        namespace: The reporters' tag prefix for this log (``train``, ``validation``, ``sft``).
    """

    def __init__(
        self, path: str | Path, reporters: Sequence[MetricReporter] = (), namespace: str = "train"
    ) -> None:
        self.path = Path(path)
        self.reporters = list(reporters)
        self.namespace = namespace

    def append(self, metrics: dict[str, Any]) -> None:
        """Write one step's metrics, flush them to disk, and hand their numbers to the reporters."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(metrics, default=float) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        step = int(metrics.get("step", 0))
        for reporter in self.reporters:
            reporter.log(self.namespace, scalar_values(metrics), step)

    def read(self) -> list[dict[str, Any]]:
        """Every logged step, in order (a torn last line from a kill is skipped)."""
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def truncate(self, step: int) -> None:
        """Keep only steps up to ``step`` (after a resume, later steps are run again)."""
        rows = [r for r in self.read() if int(r.get("step", 0)) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def plot(self, path: str | Path, validation: list[dict[str, Any]] | None = None) -> Path | None:
        """Draw the ``CURVES`` against the step into a PNG; None when nothing is logged.

        Args:
            path: The PNG to write.
            validation: Rows of a validation log (``step``, ``solve_f1``): drawn in a last panel,
                greedy validation Solve-F1 against the step, step 0 being the starting model.
        """
        rows = self.read()
        if not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(3, 3, figsize=(15, 9), constrained_layout=True)
        steps = [r["step"] for r in rows]
        for ax, name in zip(axes.flat, CURVES):
            ax.plot(steps, [r.get(name, float("nan")) for r in rows], marker=".")
            ax.set_title(name)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        last = axes.flat[len(CURVES)]
        if validation:
            ordered = sorted(validation, key=lambda r: int(r["step"]))
            last.plot([r["step"] for r in ordered], [r["solve_f1"] for r in ordered], marker="o")
            last.set_title("validation solve_f1 (greedy)")
            last.set_xlabel("step")
            last.grid(alpha=0.3)
        else:
            last.axis("off")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return Path(path)
