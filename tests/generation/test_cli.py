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
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "ok" and report["summary"]["accepted"] == {"multi_hop": 4, "single_hop": 4}


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--scenario", "triple_hop"],
            (
                "unknown scenario(s) triple_hop; choose from all, single_hop, parallel_single_hop, "
                "multi_hop, parallel_multi_hop"
            ),
        ),
        (["--n", "0"], "--n must be at least 1 (validated tasks per scenario), got 0"),
        (["--merge-rate", "2"], "merge_rate must be a probability in [0, 1], got 2.0"),
        (
            ["--backend", "openai"],
            "--backend openai needs --model (and --base-url for a local server)",
        ),
        (
            ["--backend", "openai", "--model", "m", "--max-tokens", "scene=0"],
            "--max-tokens scene must be a positive integer, got '0'",
        ),
        (
            ["--backend", "openai", "--model", "m", "--max-tokens", "stage1=9"],
            (
                "--max-tokens: unknown stage 'stage1'; choose from scene, documents, integration, "
                "scaling, deployment"
            ),
        ),
        (
            ["--backend", "openai", "--model", "m", "--timeout", "0"],
            "LLMConfig.timeout_s must be > 0 seconds, got 0.0",
        ),
    ],
)
def test_a_bad_command_line_is_one_line_on_stderr_with_status_2(tmp_path, capsys, options, message):
    assert main(["generate", *options, "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"ftrl-gym generate: error: {message}\n" and captured.out == ""
    assert not (tmp_path / "out").exists()


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
