"""The FSDP2 learner's pure parts: its settings, the lockstep deal of micro-batches, optimiser re-keying."""

from __future__ import annotations

import pytest
import torch

from ftrl_gym.agents.training.config import ConfigError, TrainConfig
from ftrl_gym.agents.training.distributed.sharding import (
    deal_in_lockstep,
    optimizer_state_by_index,
    optimizer_state_by_name,
)
from ftrl_gym.agents.training.samples import Sample


def _sample(group: str, prompt: int, generated: int) -> Sample:
    """``prompt`` context tokens then ``generated`` generated ones."""
    ids = list(range(1, prompt + generated + 1))
    return Sample(
        token_ids=ids,
        loss_mask=[0] * prompt + [1] * generated,
        logprobs=[0.0] * len(ids),
        advantages=[0.0] * len(ids),
        group=group,
        score=0.0,
    )


def test_unknown_sharding_and_fsdp_with_lora_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="learner_sharding='zero3' is unknown: use none"):
        TrainConfig(learner_sharding="zero3")
    with pytest.raises(ConfigError, match="set lora_rank=0 to shard full fine-tuning"):
        TrainConfig(learner_sharding="fsdp", lora_rank=4)
    assert TrainConfig(learner_sharding="fsdp", activation_checkpointing=True).num_learners == 1


def test_lockstep_deal_gives_every_rank_as_many_passes_and_each_batch_once() -> None:
    shared = [[_sample(g, 3, 2), _sample(g, 3, 1)] for g in ("a", "b", "c")]  # prompt of 3 shared
    full = [[_sample("d", 1, 2)]]  # a prompt of 1 runs as full sequences: one pass all the same
    dealt = deal_in_lockstep([shared[0], full[0], shared[1], shared[2]], 2)
    assert [(b[0].group, ghost) for b, ghost in dealt[0]] == [("a", False), ("b", False)]
    assert [(b[0].group, ghost) for b, ghost in dealt[1]] == [("d", False), ("c", False)]
    three = deal_in_lockstep([shared[0], full[0], shared[1]], 2)  # the last round is short
    assert [(b[0].group, ghost) for b, ghost in three[0]] == [("a", False), ("b", False)]
    assert [(b[0].group, ghost) for b, ghost in three[1]] == [("d", False), ("b", True)]


def test_optimizer_state_rekeys_by_name_and_back() -> None:
    names = ["embed.weight", "layer.weight"]
    by_index = {
        "state": {0: {"step": torch.tensor(2.0)}, 1: {"step": torch.tensor(3.0)}},
        "param_groups": [{"lr": 0.1, "params": [0, 1]}],
    }
    by_name = optimizer_state_by_name(by_index, names)
    assert by_name["param_groups"] == [{"lr": 0.1, "params": names}]
    assert float(by_name["state"]["layer.weight"]["step"]) == 3.0
    assert optimizer_state_by_index(by_name, names) == {
        "state": {0: by_index["state"][0], 1: by_index["state"][1]},
        "param_groups": [{"lr": 0.1, "params": [0, 1]}],
    }
