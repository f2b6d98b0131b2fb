"""Gains across pipeline runs (seeds), on run folders written by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.training_seeds import (
    across_runs,
    archive_run,
    behaviour_table,
    load_run,
    run_cost,
    seeds_table,
    stage_behaviour,
    validation_table,
)

ROOT = Path(__file__).resolve().parents[2]


def _write_run(folder: Path, seed: int, sft: list[float], grpo: list[float]) -> Path:
    def row(scores: list[float]) -> dict:
        return {
            "solve_f1": sum(scores) / len(scores),
            "per_task": {f"FTRL-SingleHop-v0/{i}/0": s for i, s in enumerate(scores)},
        }

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"seed": seed}))
    (folder / "results.json").write_text(json.dumps({"sft": row(sft), "grpo": row(grpo)}))
    return folder


def test_each_run_shows_its_paired_gain_and_runs_combine_by_their_gains(tmp_path: Path) -> None:
    # run a: gains per task +0.2, +0.2 -> +20 points, no spread; run b: 0, -0.2 -> -10 points
    a = load_run(_write_run(tmp_path / "a", 0, [0.0, 0.2], [0.2, 0.4]))
    b = load_run(_write_run(tmp_path / "b", 1, [0.4, 0.4], [0.4, 0.2]))
    table = seeds_table([a, b])
    assert "| a | 0 | 10.0 | 30.0 (+20.0, [+20.0, +20.0]) |" in table
    assert "| b | 1 | 40.0 | 30.0 (-10.0," in table
    summary = across_runs([a, b], target=10.0)["grpo"]
    # mean of +20 and -10 is +5; t(0.975, 1) = 12.706, sd of the two = 21.213, half width 12.706 * 15
    assert summary["mean"] == pytest.approx(5.0)
    assert summary["high"] - summary["mean"] == pytest.approx(12.706 * 15.0, rel=1e-3)
    assert (summary["runs"], summary["reached"]) == (2, 1)


def test_each_run_shows_its_wall_time_and_peak_memory(tmp_path: Path) -> None:
    run = load_run(_write_run(tmp_path / "a", 0, [0.0, 0.2], [0.2, 0.4]))
    run.rows["sft"].update(wall_s=600.0, peak_memory_gb=5.0)
    run.rows["grpo"].update(wall_s=1200.0, peak_memory_gb=6.2)
    assert run_cost(run) == (1800.0, 6.2)
    assert seeds_table([run]).splitlines()[2].endswith("| 30 | 6.20 |")
    run.rows["grpo"].pop("peak_memory_gb")
    run.rows["sft"].pop("peak_memory_gb")
    assert seeds_table([run]).splitlines()[2].endswith("| 30 | - |")  # runs from before peaks


def test_a_folder_without_results_names_itself(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is .*empty an ftrl-gym pipeline run"):
        load_run(tmp_path / "empty")


def test_the_script_prints_the_table_and_the_summary(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "only", 3, [0.0, 0.0], [0.5, 0.1])
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.training_seeds",
            str(run),
            "--target",
            "25",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "| only | 3 | 0.0 | 30.0 (+30.0, [-224.1, +284.1]) |" in out
    assert "- grpo: mean gain +30.0 points over 1 runs" in out
    assert "1 of 1 reached +25" in out


def _write_episodes(run: Path, stage: str, episodes: list[tuple[int, int, int, int]]) -> None:
    """``episodes``: (task_index, solved, total_answers, tool_calls) on FTRL-SingleHop-v0, repeat 0."""
    folder = run / "eval" / stage
    folder.mkdir(parents=True)
    keys = ("task_index", "solved", "total_answers", "tool_calls")
    rows = [{"env": "FTRL-SingleHop-v0", "repeat": 0, **dict(zip(keys, e))} for e in episodes]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_behaviour_counts_answers_and_calls_of_the_scored_episodes_only(tmp_path: Path) -> None:
    folder = _write_run(tmp_path / "a", 0, [0.0, 0.5], [0.4, 0.5])
    _write_episodes(folder, "sft", [(0, 0, 1, 2), (1, 1, 2, 3)])
    # task 7 is in the store but not in the row's per_task: a leftover of another evaluation
    _write_episodes(folder, "grpo", [(0, 1, 1, 4), (1, 1, 2, 6), (7, 5, 5, 5)])
    run = load_run(folder)
    assert stage_behaviour(run, "grpo") == {
        "solved": 2,
        "total_answers": 3,
        "tool_calls": 10,
        "episodes": 2,
    }
    table = behaviour_table([run])
    assert "| a | sft | 1 of 3 | 5 | 0.20 |" in table
    assert "| a | grpo | 2 of 3 | 10 | 0.20 |" in table
    assert stage_behaviour(load_run(_write_run(tmp_path / "b", 1, [0.0], [0.0])), "grpo") is None


def test_validation_table_shows_the_curve_and_the_step_the_test_row_scored(tmp_path: Path) -> None:
    picked = _write_run(tmp_path / "picked", 0, [0.1], [0.3])
    results = json.loads((picked / "results.json").read_text())
    results["grpo"]["selected_step"] = 2
    (picked / "results.json").write_text(json.dumps(results))
    (picked / "grpo").mkdir()
    rows = [
        {"step": 2, "solve_f1": 0.25},
        {"step": 0, "solve_f1": 0.125},
        {"step": 4, "solve_f1": 0.2},
    ]
    (picked / "grpo" / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = _write_run(tmp_path / "plain", 1, [0.1], [0.3])
    table = validation_table([load_run(picked), load_run(plain)])
    assert "| picked | grpo | 0: 12.5, 2: 25.0, 4: 20.0 | step 2 |" in table
    assert "plain" not in table  # trained without val_every: no curve


def test_an_archive_keeps_the_numbers_without_the_weights_and_reads_like_the_run(tmp_path: Path) -> None:
    folder = _write_run(tmp_path / "runs" / "seed3", 3, [0.0, 0.5], [0.4, 0.5])
    _write_episodes(folder, "sft", [(0, 0, 1, 2), (1, 1, 2, 3)])
    _write_episodes(folder, "grpo", [(0, 1, 1, 4), (1, 1, 2, 6)])
    (folder / "grpo" / "best").mkdir(parents=True)
    (folder / "grpo" / "best" / "model.safetensors").write_bytes(b"weights")
    (folder / "grpo" / "validation.jsonl").write_text(json.dumps({"step": 0, "solve_f1": 0.25}) + "\n")
    # a stage still training: no results row, a partial curve and episodes, left out of the archive
    _write_episodes(folder, "reinforce_pp", [(0, 1, 1, 4)])
    (folder / "reinforce_pp" / "validation.jsonl").parent.mkdir()
    (folder / "reinforce_pp" / "validation.jsonl").write_text(json.dumps({"step": 0, "solve_f1": 0.2}) + "\n")
    run = load_run(folder)
    kept = archive_run(run, tmp_path / "kept")
    assert kept == tmp_path / "kept" / "seed3"
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == [
        "config.json",
        "eval/grpo/results.jsonl.gz",
        "eval/sft/results.jsonl.gz",
        "grpo/validation.jsonl",
        "results.json",
    ]
    copy = load_run(kept)
    assert (copy.label, copy.seed, copy.rows) == (run.label, run.seed, run.rows)
    for table in (seeds_table, behaviour_table, validation_table):
        assert table([copy]) == table([run])
    assert "| seed3 | grpo | 2 of 3 | 10 | 0.20 |" in behaviour_table([copy])
    assert archive_run(copy, tmp_path / "kept") == kept  # an archived seed listed again stays as it is
    assert load_run(kept).rows == run.rows and stage_behaviour(load_run(kept), "grpo") is not None
    # the stage finishes: archiving the run again adds its files
    results = json.loads((folder / "results.json").read_text())
    results["reinforce_pp"] = results["grpo"]
    (folder / "results.json").write_text(json.dumps(results))
    archive_run(load_run(folder), tmp_path / "kept")
    assert {"eval/reinforce_pp/results.jsonl.gz", "reinforce_pp/validation.jsonl"} <= {
        str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()
    }
    assert "| seed3 | reinforce_pp | 1 of 1 | 4 | 0.25 |" in behaviour_table([load_run(kept)])
