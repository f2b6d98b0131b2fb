"""Folders written whole or not at all, and checkpoint rotation, on real files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ftrl_gym.agents.atomic import write_folder_atomically
from ftrl_gym.agents.training.checkpoint import CheckpointStore


def _write(text: str):
    def write(folder: Path) -> None:
        (folder / "config.json").write_text(text)
        (folder / "model.safetensors").write_text(text * 3)

    return write


def test_a_folder_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "final"
    write_folder_atomically(target, _write("old"))
    assert write_folder_atomically(target, _write("new")) == target
    assert (target / "config.json").read_text() == "new"
    assert (target / "model.safetensors").read_text() == "newnewnew"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # readable by others, as mkdir made it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]  # no staging or retired folder


def test_a_writer_that_dies_half_way_leaves_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "final"
    write_folder_atomically(target, _write("old"))

    def dies(folder: Path) -> None:
        (folder / "config.json").write_text("new")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_folder_atomically(target, dies)
    assert (target / "config.json").read_text() == "old"
    assert (target / "model.safetensors").read_text() == "oldoldold"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_a_first_write_that_dies_leaves_no_folder(tmp_path: Path) -> None:
    def dies(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_folder_atomically(tmp_path / "model", dies)
    assert list(tmp_path.iterdir()) == []  # no config.json for a resume to mistake for a model


def test_leftovers_of_a_killed_writer_are_removed_on_the_next_write(tmp_path: Path) -> None:
    for name in (".staging.final.abc123", ".retired.final.def456", ".staging.other.x"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_text("x" * 1000)
    write_folder_atomically(tmp_path / "final", _write("new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging.other.x", "final"]


class _Files:
    """Stands for the policy: what ``CheckpointStore.save`` needs of it is ``write_to(folder)``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def write_to(self, folder: Path) -> None:
        (folder / "config.json").write_text(self.text)


def test_store_keeps_the_newest_two_and_points_latest_at_the_newest(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "checkpoints", keep=2)
    for step in (1, 2, 3):
        store.save(step, _Files(f"step {step}"), {"step": step})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "latest",
        "step_000002",
        "step_000003",
    ]
    folder, state = store.load_latest()
    assert folder.name == "step_000003" and state == {"step": 3}
    assert (folder / "config.json").read_text() == "step 3"
