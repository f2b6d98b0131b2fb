"""The collective weight broadcast on a real local Ray cluster: same run as one process, restarts rejoin."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from test_distributed_training import (  # the same cluster, workspace, settings and reference run
    _assert_same_run,
    _distributed,
    _kill_a_worker_mid_request,
    _settings,
    ray_cluster,  # noqa: F401
    turn_reference,  # noqa: F401
    workspace,  # noqa: F401
)

from ftrl_gym.agents.training.config import ConfigError, TrainConfig, build_config
from ftrl_gym.agents.training.distributed.weight_group import empty_buffers, layout_of, pack, unpack


def test_flat_buffers_round_trip_a_mixed_dtype_state_dict() -> None:
    state = {
        "a": torch.arange(6, dtype=torch.float32).view(2, 3),
        "b": torch.tensor([1, 2], dtype=torch.int64),
        "c": torch.full((2,), 0.5, dtype=torch.bfloat16),
        "d": torch.ones(1, 2, dtype=torch.float32),
    }
    layout = layout_of(state)
    sent = pack(state, layout, torch.device("cpu"))
    assert [b.dtype for b in sent] == [torch.float32, torch.int64, torch.bfloat16]
    assert [b.numel() for b in sent] == [8, 2, 2]
    received = empty_buffers(layout, torch.device("cpu"))
    for buffer, value in zip(received, sent):
        buffer.copy_(value)
    named = unpack(received, layout)
    assert list(named) == list(state)
    for name, tensor in state.items():
        assert torch.equal(named[name], tensor)


@pytest.fixture
def collective_config(workspace: Path) -> TrainConfig:  # noqa: F811
    """The scheme (a) settings of the reference run, weights broadcast through the group."""
    return build_config(overrides=_settings(workspace, weight_sync="collective"))


def _assert_collective_run(metrics: list[dict], reference: list[dict]) -> None:
    """The single-process metrics, with every step's weights received as its version."""
    _assert_same_run(metrics, reference)
    assert [m["weight_version"] for m in metrics] == [1, 2, 3]


def test_collective_weight_sync_reaches_the_single_process_metrics(
    ray_cluster,  # noqa: F811
    collective_config: TrainConfig,
    turn_reference: list[dict],  # noqa: F811
    tmp_path: Path,
) -> None:
    metrics, _ = _distributed(collective_config, tmp_path / "run")
    _assert_collective_run(metrics, turn_reference)
    assert all(m["rollout_staleness"] == 0 for m in metrics)
    assert metrics[-1]["worker_restarts"] == 0


def test_a_killed_worker_rejoins_the_weight_group_and_its_episodes_rerun(
    ray_cluster,  # noqa: F811
    collective_config: TrainConfig,
    turn_reference: list[dict],  # noqa: F811
    tmp_path: Path,
) -> None:
    killed: list[int] = []
    watch = functools.partial(_kill_a_worker_mid_request, killed=killed)
    metrics, _ = _distributed(collective_config, tmp_path / "run", during=watch)
    assert killed, "no worker was caught mid-request"
    # The restarted worker joined a new group (new port) with the others, got the step's weights
    # and re-ran the lost episodes with their seeds: the metrics are the single-process ones.
    assert (metrics[-1]["worker_restarts"], metrics[-1]["rerun_items"] > 0) == (1, True)
    _assert_collective_run(metrics, turn_reference)


def test_an_unknown_weight_sync_says_which_to_use() -> None:
    with pytest.raises(ConfigError, match="weight_sync='nccl' is unknown: use object_store"):
        build_config(overrides={"weight_sync": "nccl"})
