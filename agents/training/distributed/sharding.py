"""FSDP2 for the learner ranks: sharding, full state dicts on rank 0, and micro-batches dealt in lockstep."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.samples import Sample

GATHERED = StateDictOptions(full_state_dict=True, cpu_offload=True)
"""Full (unsharded) tensors on the CPU of rank 0; the other ranks get empty dicts."""

LOADED = StateDictOptions(full_state_dict=True)
"""Every rank passes the full tensors and keeps its own shard of them."""


def mixed_precision(compute_dtype: torch.dtype) -> MixedPrecisionPolicy:
    """FSDP2's precision: parameters gathered in ``compute_dtype``, gradients reduced in float32.

    The sharded parameters (the master copy AdamW steps) keep their own dtype: float32 for the
    policy. In float32 nothing is cast.
    """
    if compute_dtype == torch.float32:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)


def shard_policy(policy: Policy, mesh: DeviceMesh) -> None:
    """Shard ``policy`` over ``mesh``: ``fully_shard`` on each decoder layer, then on the root.

    The root is the policy's ``ScoringModule`` (decoder and output head in one forward), so its
    own parameters (embeddings, final norm, head) are gathered once per scoring pass and each
    layer's just before it runs. FSDP2 averages gradients over the ranks (``undo_average`` turns
    that into the sum the token-share weighting needs). Call before building the optimiser: FSDP2 replaces every
    parameter by a ``DTensor`` holding this rank's shard.

    Args:
        policy: The policy (or a frozen reference: its parameters need no gradients).
        mesh: A one-dimensional device mesh over the learner ranks.
    """
    precision = mixed_precision(policy.compute_dtype)
    for layer in policy.model.get_decoder().layers:
        fully_shard(layer, mesh=mesh, mp_policy=precision)
    fully_shard(policy.scorer, mesh=mesh, mp_policy=precision)
    policy.sharded = True


def undo_average(policy: Policy, ranks: int) -> None:
    """Multiply the sharded gradients by ``ranks``: FSDP2's mean over ranks becomes their sum.

    Each rank's gradient already carries its token share of the whole mini-batch, so the ranks'
    gradients must be summed (as the replicated learner's all-reduce does). FSDP2 can divide by a
    custom factor instead, but on gloo that needs ``PREMUL_SUM``, which gloo lacks.
    """
    for parameter in policy.model.parameters():
        if parameter.grad is not None:
            parameter.grad.mul_(ranks)


def local_bytes(tensors: Sequence[torch.Tensor | None]) -> int:
    """Bytes this rank stores for ``tensors``: a ``DTensor``'s local shard, else the whole tensor."""
    total = 0
    for tensor in tensors:
        if tensor is None:
            continue
        local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
        total += local.numel() * local.element_size()
    return total


def trainable_names(model: torch.nn.Module) -> list[str]:
    """Names of the parameters that require gradients, in ``parameters()`` (optimiser) order."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def full_model_state(policy: Policy) -> dict[str, torch.Tensor]:
    """The policy's full state dict on rank 0's CPU (empty on the other ranks; collective)."""
    return get_model_state_dict(policy.model, options=GATHERED)


def full_optimizer_state(policy: Policy, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """AdamW's full state on rank 0 keyed as a single process keys it (collective).

    FSDP2's gathered optimiser state is keyed by parameter name; ``torch.optim`` keys it by the
    parameter's index in the optimiser, which is what ``RLTrainer``'s checkpoints hold. Rank 0
    gets the index-keyed dict, the other ranks an empty one.
    """
    by_name = get_optimizer_state_dict(policy.model, optimizer, options=GATHERED)
    if not by_name:
        return {}
    return optimizer_state_by_index(by_name, trainable_names(policy.model))


def optimizer_state_by_index(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Re-key a name-keyed optimiser state dict by the parameters' indices in ``names``."""
    index = {name: i for i, name in enumerate(names)}
    return {
        "state": {index[name]: value for name, value in state["state"].items()},
        "param_groups": [
            {**group, "params": [index[name] for name in group["params"]]}
            for group in state["param_groups"]
        ],
    }


def optimizer_state_by_name(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Re-key an index-keyed optimiser state dict by the parameters' names (``names[i]``)."""
    return {
        "state": {names[int(i)]: value for i, value in state["state"].items()},
        "param_groups": [
            {**group, "params": [names[int(i)] for i in group["params"]]}
            for group in state["param_groups"]
        ],
    }


def load_full_state(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    model_dir: Path,
    optimizer_state: dict[str, Any],
) -> None:
    """Load a single-process-format checkpoint into a sharded policy and its optimiser.

    Every rank reads the full weights and keeps its shard (collective).
    """
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    set_model_state_dict(policy.model, loaded, options=LOADED)
    by_name = optimizer_state_by_name(optimizer_state, trainable_names(policy.model))
    set_optimizer_state_dict(policy.model, optimizer, by_name, options=LOADED)


class GatheredWeights:
    """A policy's gathered full state written as a Hugging Face folder (``CheckpointStore.save``).

    Args:
        policy: The sharded policy (its config and tokenizer are written).
        state: Its full state dict (``full_model_state`` on rank 0).
    """

    def __init__(self, policy: Policy, state: dict[str, torch.Tensor]) -> None:
        self.policy = policy
        self.state = state

    def write_to(self, folder: Path) -> None:
        """Write ``config.json``, the weights and the tokenizer into ``folder``."""
        self.policy.model.save_pretrained(folder, state_dict=self.state)
        self.policy.tokenizer.save_pretrained(folder)


def deal_in_lockstep(
    micro: list[list[Sample]], ranks: int
) -> list[list[tuple[list[Sample], bool]]]:
    """Deal micro-batches to sharded ranks so every rank runs the same sequence of passes.

    FSDP2 gathers each layer's parameters in every forward and reduces its gradients in every
    backward, as collectives all ranks must join in the same order. Every micro-batch is one
    forward and one backward pass through the scorer (a shared-prompt one packs its responses
    into one sequence), so the ranks need only run the same number: round ``k`` gives rank ``r``
    the ``r``-th micro-batch of that round; a rank left without one in the last deal repeats the
    round's first micro-batch as a *ghost* (flag True), whose loss is multiplied by 0. Every real
    micro-batch is dealt exactly once, so the gradient sum is the single process's.

    Args:
        micro: The mini-batch's micro-batches (``trainer.micro_batches``).
        ranks: Number of sharded ranks.

    Returns:
        For each rank, its ``(micro-batch, is_ghost)`` pairs in order.
    """
    dealt: list[list[tuple[list[Sample], bool]]] = [[] for _ in range(ranks)]
    for start in range(0, len(micro), ranks):
        deal = micro[start : start + ranks]
        for rank in range(ranks):
            dealt[rank].append((deal[rank], False) if rank < len(deal) else (deal[0], True))
    return dealt
