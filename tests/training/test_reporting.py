"""report_to: the TensorBoard event file and the offline W&B run hold the numbers of metrics.jsonl."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from training_helpers import tiny_model

from ftrl_gym.agents.training.config import ConfigError, build_config
from ftrl_gym.agents.training.metrics import MetricsLog
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.reporting import TensorBoardReporter, scalar_values
from ftrl_gym.agents.training.sft import run_sft
from ftrl_gym.agents.training.trainer import RLTrainer

pytest.importorskip("tensorboard")
pytest.importorskip("wandb")

WEATHER_TASKS = Path(__file__).parents[1] / "data" / "tasks.jsonl"
WANDB_BLOCK = 32768


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of ``log_dir``: tag → (step, value) in write order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def wandb_history(run_dir: Path) -> list[dict]:
    """The history rows of the one offline W&B run under ``run_dir/wandb``, read from its .wandb file.

    The file is W&B's record log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then 32 KiB
    blocks of chunks, each with a 7-byte header (CRC32C, length, type: 1 full, 2 first, 3 middle,
    4 last); a record is a ``wandb_internal_pb2.Record`` protobuf.
    """
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0)
    rows, position, pending = [], 7, b""
    while position + 7 <= len(data):
        left = WANDB_BLOCK - position % WANDB_BLOCK
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if left < 7 or (length, kind) == (0, 0):
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scalar_values_keeps_finite_numbers_but_the_step() -> None:
    row = {"step": 3, "reward": 0.5, "calls": 2, "best": True, "model": "x", "kl": float("nan")}
    assert scalar_values(row) == {"reward": 0.5, "calls": 2.0, "best": 1.0}


def test_report_to_is_validated_and_none_means_no_reporter() -> None:
    assert build_config(overrides={"report_to": "none"}).report_to == []
    assert build_config(overrides={"report_to": "tensorboard,wandb"}).report_to == ["tensorboard", "wandb"]
    with pytest.raises(ConfigError, match="report_to holds 'mlflow': use tensorboard, wandb, both"):
        build_config(overrides={"report_to": ["mlflow"]})


def test_metrics_log_passes_rows_to_tensorboard_under_its_namespace(tmp_path: Path) -> None:
    reporter = TensorBoardReporter(tmp_path / "tb")
    log = MetricsLog(tmp_path / "validation.jsonl", [reporter], namespace="validation")
    log.append({"step": 0, "solve_f1": 0.25})
    log.append({"step": 2, "solve_f1": 0.75})
    reporter.close()
    assert tensorboard_scalars(tmp_path / "tb") == {"validation/solve_f1": [(0, 0.25), (2, 0.75)]}


def test_sft_reports_metrics_jsonl_to_tensorboard_and_offline_wandb(
    tokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    config = build_config(overrides={
        "env_ids": ["FTRL-Custom-v0"], "tasks": str(WEATHER_TASKS), "sft_tasks": 3,
        "sft_batch_size": 1, "sft_epochs": 1, "sft_lr": 3e-3, "torch_threads": 1,
        "report_to": ["tensorboard", "wandb"],
    })
    run_sft(config, tmp_path, policy=Policy(tiny_model(tokenizer), tokenizer), progress=False)
    rows = _jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert set(scalars) == {"sft/epoch", "sft/loss", "sft/tokens_per_s"}
    for name in ("loss", "tokens_per_s"):
        assert [s for s, _ in scalars[f"sft/{name}"]] == [1, 2, 3]
        assert [v for _, v in scalars[f"sft/{name}"]] == pytest.approx([r[name] for r in rows], rel=1e-6)
    history = wandb_history(tmp_path)
    assert [h["_step"] for h in history] == [1, 2, 3]
    assert [h["sft/loss"] for h in history] == [r["loss"] for r in rows]


def test_rl_training_reports_train_and_validation_rows(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    config = build_config(overrides={
        "env_ids": ["FTRL-Custom-v0"], "tasks": str(easy_tasks), "train_tasks": 2,
        "prompts_per_step": 2, "rollouts_per_prompt": 2, "mini_batch_size": 2, "micro_batch_size": 8,
        "max_new_tokens": 6, "eval_max_new_tokens": 6, "max_turns": 2, "max_context_tokens": 1024,
        "max_steps": 2, "val_every": 2, "val_tasks": 2, "torch_threads": 1,
        "report_to": ["tensorboard"],
    })
    trainer = RLTrainer(config, tmp_path, policy=Policy(tiny_model(tokenizer), tokenizer), progress=False)
    try:
        trainer.train()
    finally:
        trainer.close()
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    rows = _jsonl(tmp_path / "metrics.jsonl")
    for name in ("reward", "kl", "entropy", "grad_norm"):
        assert scalars[f"train/{name}"] == [(r["step"], pytest.approx(r[name], rel=1e-6)) for r in rows]
    validation = _jsonl(tmp_path / "validation.jsonl")
    assert scalars["validation/solve_f1"] == [
        (r["step"], pytest.approx(r["solve_f1"], rel=1e-6)) for r in validation
    ]
