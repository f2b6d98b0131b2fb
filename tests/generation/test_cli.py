"""``ftrl-gym generate`` from the command line."""

from __future__ import annotations

import json

import pytest

from ftrl_gym.cli import main
from ftrl_gym.tasks import load_tasks


def test_generate_writes_one_file_per_scenario_and_prints_the_summary(tmp_path, capsys):
    status = main(
        [
            "generate",
            "--scenario",
            "single_hop,multi_hop",
            "--n",
            "4",
            "--seed",
            "3",
            "--split",
            "test",
            "--out",
            str(tmp_path),
            "--distractor-rate",
            "1.0",
            "--merge-rate",
            "0.0",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert len(load_tasks(tmp_path / "single_hop" / "test.jsonl")) == 4
    assert len(load_tasks(tmp_path / "multi_hop" / "test.jsonl")) == 4
    assert "accepted             multi_hop: 4, single_hop: 4" in out
    assert (
        "distractors          1:" in out
        or "distractors          2:" in out
        or "distractors          3:" in out
    )
    assert f"wrote 8 tasks under {tmp_path}" in out


def test_unknown_scenario_is_a_clear_error(tmp_path):
    with pytest.raises(
        SystemExit, match="unknown scenario\\(s\\) triple_hop; choose from all, single_hop"
    ):
        main(["generate", "--scenario", "triple_hop", "--out", str(tmp_path)])


def test_inspect_prints_every_stage_as_json(capsys):
    assert (
        main(["generate", "--scenario", "parallel_multi_hop", "--inspect", "2", "--seed", "4"]) == 0
    )
    stages = json.loads(capsys.readouterr().out)
    assert list(stages) == [
        "scene",
        "documents",
        "integration",
        "scaling",
        "deployment",
        "validation",
    ]
    assert stages["validation"] == {"ok": True, "reason": None, "detail": ""}
    names = [d["name"] for d in stages["scaling"]["docs"]]
    assert sorted(names) == sorted(stages["deployment"]["record"]["codes"])
    assert len(stages["documents"]["docs"]) == len(stages["scene"]["nodes"])
    assert len(stages["integration"]["docs"]) <= len(stages["documents"]["docs"])
