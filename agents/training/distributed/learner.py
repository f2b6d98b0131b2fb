"""The learner actor: one data-parallel rank of the policy update (``torch.distributed``, gloo or NCCL)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ftrl_gym.agents.training.checkpoint import CheckpointStore
from ftrl_gym.agents.training.config import TrainConfig
from ftrl_gym.agents.training.distributed.cluster import ACTOR_ENV
from ftrl_gym.agents.training.distributed.weight_group import Layout, WeightGroup, layout_of, pack
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.samples import Sample
from ftrl_gym.agents.training.trainer import (
    LOSS_STATS,
    accumulate_gradients,
    build_optimizer,
    build_reference,
    clip_and_step,
    micro_batch_loss,
    recompute_old_logprobs,
    restore_learner,
)


def free_port() -> int:
    """A TCP port free on this node now (for the process group's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


class Learner:
    """One rank of the learner: the policy, its frozen reference and AdamW (a Ray actor class).

    Every rank holds the whole model and optimiser (data parallelism). The driver hands each rank
    some micro-batches of a mini-batch together with the mini-batch's token total; each rank
    backpropagates its share, the gradients and loss statistics are summed over ranks
    (all-reduce), and every rank takes the same clipped AdamW step, so the ranks stay identical and
    equal a single process that ran all the micro-batches.

    Args:
        config: The run's settings as a dict (``TrainConfig.to_dict()``).
        rank: This rank.
        world_size: Number of ranks.
        out_dir: Run folder (checkpoints are written by rank 0 under ``out_dir/checkpoints``).
    """

    def __init__(self, config: dict[str, Any], rank: int, world_size: int, out_dir: str) -> None:
        os.environ.update(ACTOR_ENV)
        self.config = TrainConfig(**config)
        self.rank = rank
        self.world_size = world_size
        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)
        torch.manual_seed(self.config.seed)
        self.policy = Policy(
            self.config.model,
            dtype=self.config.dtype,
            device=self.config.device,
            temperature=self.config.temperature,
        )
        self.reference = build_reference(self.policy, self.config)
        self.optimizer = build_optimizer(self.policy, self.config)
        self.checkpoints = CheckpointStore(Path(out_dir) / "checkpoints")
        self.weight_group: WeightGroup | None = None

    def rendezvous(self) -> str:
        """``tcp://ip:port`` on this rank's node for the process group (called on rank 0)."""
        host, port = self.weight_rendezvous()
        return f"tcp://{host}:{port}"

    def weight_rendezvous(self) -> tuple[str, int]:
        """This node's address and a free port for a (new) weight-broadcast group (rank 0)."""
        import ray

        return ray.util.get_node_ip_address(), free_port()

    def weight_layout(self) -> Layout:
        """Names, shapes and dtypes of the weights the collective broadcast sends."""
        return layout_of(self.policy.model.state_dict())

    def join_weight_group(self, host: str, port: int, size: int, backend: str) -> None:
        """Rank 0: host a new weight-broadcast group with the rollout workers (members 1..)."""
        self.weight_group = None  # leave the previous group first
        self.weight_group = WeightGroup(host, port, 0, size, backend)

    def send_weights(self) -> None:
        """Rank 0: broadcast the policy's weights to the group, one flat buffer per dtype."""
        assert self.weight_group is not None, "join_weight_group first"
        state = self.policy.model.state_dict()
        self.weight_group.broadcast(pack(state, layout_of(state), self.weight_group.device))

    def join_group(self, init_method: str) -> None:
        """Join the data-parallel process group: NCCL when the learner is on a GPU, gloo otherwise."""
        if self.world_size == 1:
            return
        backend = "nccl" if self.config.device.startswith("cuda") else "gloo"
        dist.init_process_group(
            backend, init_method=init_method, rank=self.rank, world_size=self.world_size
        )

    def set_learning_rate(self, lr: float) -> None:
        """Use ``lr`` for the next optimiser steps (the driver's schedule)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def optimizer_step(self, micro: list[list[Sample]], total_tokens: int) -> dict[str, float]:
        """One optimiser update: this rank's micro-batches, all-reduced gradients, the same step.

        Args:
            micro: This rank's micro-batches of the mini-batch (possibly none).
            total_tokens: Generated tokens of the whole mini-batch (all ranks).

        Returns:
            The mini-batch's loss statistics (summed over ranks), the gradient norm and
            ``stepped`` (0.0 when a non-finite gradient skipped the update on every rank).
        """
        self.optimizer.zero_grad(set_to_none=True)
        stats = accumulate_gradients(self._loss, micro, total_tokens)
        if self.world_size > 1:
            stats = self._all_reduce(stats)
        norm, stepped = clip_and_step(self.policy, self.optimizer, self.config.max_grad_norm)
        return {**stats, "grad_norm": norm, "stepped": float(stepped)}

    def recompute_old_logprobs(self, samples: list[Sample]) -> list[Sample]:
        """Score the batch with this rank's policy (``recompute_old_logprobs``); returns it."""
        config = self.config
        recompute_old_logprobs(
            self.policy, samples, config.micro_batch_size, config.micro_batch_tokens
        )
        return samples

    def _loss(self, batch: list[Sample]) -> dict[str, Any]:
        return micro_batch_loss(self.policy, self.reference, self.config, batch)

    def _all_reduce(self, stats: dict[str, float]) -> dict[str, float]:
        """Sum gradients and statistics over the ranks (each holds its token-share-weighted part)."""
        for parameter in self.policy.model.parameters():
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        pending = [
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, async_op=True)
            for p in self.policy.model.parameters()
        ]
        values = torch.tensor([stats[k] for k in LOSS_STATS], dtype=torch.float64)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        for work in pending:
            work.wait()
        return dict(zip(LOSS_STATS, values.tolist()))

    def weights(self) -> dict[str, torch.Tensor]:
        """The policy's named tensors on the CPU (what the object-store broadcast ships)."""
        return {k: v.detach().to("cpu") for k, v in self.policy.model.state_dict().items()}

    def save_checkpoint(self, step: int, data_state: dict[str, Any]) -> str:
        """Rank 0: write checkpoint ``step`` (weights, optimiser, torch RNG and the driver's state).

        The state has the keys of ``RLTrainer.save_checkpoint``, so single-process and distributed
        runs resume from each other's checkpoints.
        """
        state = {
            **data_state,
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.random.get_rng_state(),
        }
        return str(self.checkpoints.save(step, self.policy, state))

    def load_checkpoint(self) -> dict[str, Any] | None:
        """Load the newest checkpoint into this rank; returns the driver's part of its state."""
        found = self.checkpoints.load_latest()
        if found is None:
            return None
        model_dir, state = found
        restore_learner(self.policy, self.optimizer, model_dir, state)
        return {k: v for k, v in state.items() if k not in ("optimizer", "torch_rng")}

    def save_model(self, folder: str) -> str:
        """Write the policy as a Hugging Face folder."""
        return str(self.policy.save(folder))

    def close(self) -> None:
        """Leave the process groups."""
        self.weight_group = None
        if dist.is_initialized():
            dist.destroy_process_group()
