"""Atomic text files: a whole new file replaces the old, and a failed write leaves the old one alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftrl_gym.atomic import write_text_atomically


def test_the_new_text_replaces_the_old_and_no_staging_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "best.json"
    target.write_text("old")
    assert write_text_atomically(target, "new \u00e9") == target
    assert target.read_text(encoding="utf-8") == "new \u00e9"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json"]


def test_a_write_that_fails_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "latest"
    target.write_text("step_000002")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomically(target, "\ud800")  # a lone surrogate cannot be encoded as UTF-8
    assert target.read_text() == "step_000002"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]
