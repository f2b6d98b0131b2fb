"""The GPU check's CPU path: one GRPO step of SmolLM2 in bf16 mixed precision moves the weights."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from benchmarks.gpu_check import main


@pytest.mark.slow
def test_gpu_check_runs_one_step_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    summary = main(
        ["--device", "cpu", "--steps", "1", "--prompts", "1", "--n", "2", "--max-new-tokens", "8"]
    )
    printed = capsys.readouterr().out
    assert "compute bfloat16, master weights float32" in printed
    assert "step 1: reward" in printed and "tok/s" in printed
    assert "weights moved: yes" in printed
    # one AdamW step at lr 1e-6 on float32 master weights moves nearly every weight (vocabulary
    # rows whose probability is ~0 get gradients too small to move them)
    assert summary["weights_moved"] > 0.9
    assert summary["stepped"] == 1.0
    assert math.isfinite(summary["loss"]) and summary["kl"] >= 0.0
