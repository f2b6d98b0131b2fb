"""The distributed settings: validation messages, placement arithmetic, version tags and the CLI flags."""

from __future__ import annotations

import argparse

import pytest

from ftrl_gym.agents.training.cli import add_arguments
from ftrl_gym.agents.training.config import ConfigError, build_config
from ftrl_gym.agents.training.distributed.cluster import (
    ClusterError,
    check_resources,
    required_resources,
)
from ftrl_gym.agents.training.distributed.versions import (
    UNLOADED,
    StaleRolloutError,
    needs_broadcast,
    staleness,
)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_rollout_workers": 0}, "num_rollout_workers must be at least 1"),
        ({"learner_gpus": -1}, "learner_gpus must be 0 or more"),
        ({"max_staleness": -1}, "max_staleness must be 0 or more"),
        ({"vllm_tensor_parallel_size": 2}, "needs GPUs: set rollout_worker_gpus"),
        ({"num_learners": 2, "device": "cuda"}, "needs a GPU per rank: set learner_gpus=1"),
    ],
)
def test_bad_distributed_settings_say_how_to_fix_them(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(overrides=overrides)


def test_required_resources_add_up_the_actors() -> None:
    config = build_config(
        overrides={
            "num_rollout_workers": 4,
            "rollout_worker_cpus": 2,
            "rollout_worker_gpus": 1,
            "num_learners": 4,
            "learner_cpus": 1,
            "learner_gpus": 1,
        }
    )
    assert required_resources(config) == {"CPU": 12.0, "GPU": 8.0}
    check_resources(config, {"CPU": 16.0, "GPU": 8.0})
    with pytest.raises(ClusterError, match="reserve 8 GPU but the Ray cluster has 4"):
        check_resources(config, {"CPU": 16.0, "GPU": 4.0})


def test_staleness_is_counted_in_optimiser_steps() -> None:
    assert staleness(5, 3) == 2
    with pytest.raises(StaleRolloutError, match="before any weights reached it"):
        staleness(5, UNLOADED)
    assert needs_broadcast(1, UNLOADED, 3)
    assert not needs_broadcast(3, 2, 1)
    assert needs_broadcast(4, 2, 1)


def test_ray_address_flag_sets_the_setting() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["grpo", "--ray-address", "10.0.0.1:6379"])
    assert args.ray_address == "10.0.0.1:6379"
    assert parser.parse_args(["grpo", "--ray"]).ray
