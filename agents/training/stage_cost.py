"""What a pipeline stage cost (wall time, peak memory) over every invocation that worked on it.

The pipeline writes a stage's row to ``results.json`` only when the stage ends. An invocation killed
part-way through a stage (a machine taken back, a session's end) left no trace of its time, and the
invocation that finished the stage reported its own part alone: a GRPO stage that ran 83 min, was
stopped and finished in 53 min more read 53 min. ``StageMeter`` saves the stage's running cost to
``stage_costs.json`` in the run folder every ``interval_s`` while the stage works, and the next
invocation starts from it.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any, Self

from ftrl_gym.agents.training.memory_watch import PeakMemory

from ftrl_gym.atomic import write_text_atomically

COSTS_NAME = "stage_costs.json"
"""The ledger's file name in a run folder."""


@dataclasses.dataclass(frozen=True)
class StageCost:
    """A stage's cost so far.

    Attributes:
        wall_s: Seconds of wall time, summed over the invocations that worked on the stage.
        peak_memory_gb: The largest peak (PSS of the stage's process tree, GB) any of them measured;
            None when none could be measured.
    """

    wall_s: float
    peak_memory_gb: float | None = None


def combined_cost(
    before: StageCost | None, spent_s: float, measured_gb: float | None, worked: bool
) -> StageCost:
    """The stage's cost once this invocation's part is added.

    An invocation that found the stage done (no training, no new evaluation episode) adds nothing;
    one that worked adds its time and raises the peak if it measured a larger one.

    Args:
        before: The cost recorded by earlier invocations, or None when there is none.
        spent_s: Seconds this invocation has spent on the stage.
        measured_gb: This invocation's peak over the stage's processes, or None.
        worked: Whether this invocation trained or evaluated anything for the stage.

    Returns:
        The combined cost.
    """
    if before is None:
        return StageCost(spent_s, measured_gb)
    if not worked:
        peak = before.peak_memory_gb if before.peak_memory_gb is not None else measured_gb
        return StageCost(before.wall_s, peak)
    peaks = [gb for gb in (before.peak_memory_gb, measured_gb) if gb is not None]
    return StageCost(before.wall_s + spent_s, max(peaks) if peaks else None)


class CostLedger:
    """``stage_costs.json`` in a run folder: each stage's cost so far.

    Args:
        run_dir: The run folder.
        results: The run's ``results.json`` rows (stage → row), read for stages the ledger lacks
            (runs from before it existed keep their rows' ``wall_s`` and ``peak_memory_gb``).
    """

    def __init__(self, run_dir: Path, results: dict[str, dict[str, Any]]) -> None:
        self.path = Path(run_dir) / COSTS_NAME
        self.results = results

    def _read(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def before(self, stage: str) -> StageCost | None:
        """The stage's recorded cost, or None when no invocation recorded one."""
        entry = self._read().get(stage) or self.results.get(stage)
        if not entry or "wall_s" not in entry:
            return None
        peak = entry.get("peak_memory_gb")
        return StageCost(float(entry["wall_s"]), float(peak) if peak is not None else None)

    def save(self, stage: str, cost: StageCost) -> None:
        """Record the stage's cost; the file is replaced whole, so a kill leaves no half of it.
        One writer at a time: a ``StageMeter`` joins its saving thread before its final save."""
        costs = self._read()
        costs[stage] = dataclasses.asdict(cost)
        write_text_atomically(self.path, json.dumps(costs, indent=2))


class StageMeter:
    """Times one stage of this invocation and keeps its cost in the ledger while it runs.

    Run the stage's blocks under ``meter.watch`` (a ``PeakMemory``), then call ``finish``. Until
    then a thread saves the cost as if the invocation worked every ``interval_s``, so a kill loses
    at most that much; leaving the block without ``finish`` (an error) saves it the same way.

    Example:
        with StageMeter(ledger, "sft") as meter:
            with meter.watch:
                in_fresh_process(run_sft, ...)
            cost = meter.finish(worked=True)

    Args:
        ledger: The run's ledger.
        stage: The stage's name (``start``, ``sft``, ``grpo``, ...).
        interval_s: Seconds between saves.
    """

    def __init__(self, ledger: CostLedger, stage: str, interval_s: float = 30.0) -> None:
        self.ledger = ledger
        self.stage = stage
        self.interval_s = interval_s
        self.watch = PeakMemory()
        self._before = ledger.before(stage)
        self._started = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cost(self, worked: bool) -> StageCost:
        """The stage's cost if this invocation ended now."""
        spent = time.perf_counter() - self._started
        return combined_cost(self._before, spent, self.watch.peak_gb, worked)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.ledger.save(self.stage, self.cost(worked=True))

    def __enter__(self) -> Self:
        """Start the clock and the saving thread."""
        self._started = time.perf_counter()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"stage-cost-{self.stage}", daemon=True
        )
        self._thread.start()
        return self

    def finish(self, worked: bool) -> StageCost:
        """Stop saving; record and return the stage's cost with this invocation's part.

        Args:
            worked: Whether this invocation trained or evaluated anything for the stage.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        cost = self.cost(worked)
        self.ledger.save(self.stage, cost)
        return cost

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self.finish(worked=True)
