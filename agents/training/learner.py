"""The learner: the policy, its frozen reference and AdamW, alone in one process or as one rank of many."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ftrl_gym.agents.atomic import write_folder_atomically
from ftrl_gym.agents.training.checkpoint import CheckpointStore
from ftrl_gym.agents.training.config import TrainConfig
from ftrl_gym.agents.training.distributed.sharding import (
    GatheredWeights,
    full_model_state,
    full_optimizer_state,
    load_full_state,
    shard_policy,
    undo_average,
)
from ftrl_gym.agents.training.distributed.weight_group import Layout, WeightGroup, layout_of, pack
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.samples import Sample
from ftrl_gym.agents.training.update import (
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
    """The learner: the policy, its frozen reference and AdamW; one process's, or one rank's of many.

    ``RLTrainer``'s backends hold one: ``LocalBackend`` a single one in its own process
    (``world_size`` 1: no process group), ``RayBackend`` one per Ray actor. Every rank holds the
    whole model and optimiser (data parallelism), or with ``learner_sharding=fsdp`` 1/N of them
    (FSDP2, sharded when the rank joins its group). The backend hands each rank some micro-batches
    of a mini-batch together with the mini-batch's token total; each rank backpropagates its share,
    the gradients are summed over ranks (all-reduce, or FSDP2's reduce-scatter into each rank's
    shard) with the loss statistics, and every rank takes the same clipped AdamW step (on its
    shard), so the ranks equal a single process that ran all the micro-batches. Sharded ranks
    gather the full weights on rank 0 for checkpoints, model folders and the weight sync; every
    rank must take part in those calls.

    Args:
        config: The run's settings (as a dict, ``TrainConfig.to_dict()``, when sent to a Ray actor).
        rank: This rank.
        world_size: Number of ranks.
        out_dir: Run folder (checkpoints are written by rank 0 under ``out_dir/checkpoints``).
        policy: A ready policy (tests); built from ``config.model`` otherwise.
    """

    def __init__(
        self,
        config: TrainConfig | dict[str, Any],
        rank: int,
        world_size: int,
        out_dir: str | Path,
        policy: Policy | None = None,
    ) -> None:
        self.config = config if isinstance(config, TrainConfig) else TrainConfig(**config)
        self.rank = rank
        self.world_size = world_size
        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)
        torch.manual_seed(self.config.seed)
        self.policy = policy or Policy(
            self.config.model, dtype=self.config.dtype, device=self.config.device
        )
        self.policy.temperature = self.config.temperature  # score the distribution rollouts come from
        self.reference = build_reference(self.policy, self.config)  # before the adapters: the start
        if self.config.activation_checkpointing:
            self.policy.checkpoint_activations()
        if self.config.lora_rank:
            self.policy.add_lora(
                self.config.lora_rank, self.config.lora_alpha, self.config.lora_targets
            )
        self.sharded = self.config.learner_sharding == "fsdp"
        # FSDP2 replaces the parameters when the rank joins its group: the optimiser comes after.
        self.optimizer: torch.optim.Optimizer | None = (
            None if self.sharded else build_optimizer(self.policy, self.config)
        )
        self.checkpoints = CheckpointStore(Path(out_dir) / "checkpoints")
        self.weight_group: WeightGroup | None = None
        self.gathered: dict[str, torch.Tensor] = {}
        """Sharded rank 0: the full weights of the latest ``gather_weights`` (for the sync)."""

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
        return layout_of(self._full_state())

    def join_weight_group(self, host: str, port: int, size: int, backend: str) -> None:
        """Rank 0: host a new weight-broadcast group with the rollout workers (members 1..)."""
        self.weight_group = None  # leave the previous group first
        self.weight_group = WeightGroup(host, port, 0, size, backend)

    def send_weights(self) -> None:
        """Rank 0: broadcast the policy's weights to the group, one flat buffer per dtype."""
        assert self.weight_group is not None, "join_weight_group first"
        state = self._full_state()
        self.weight_group.broadcast(pack(state, layout_of(state), self.weight_group.device))

    def join_group(self, init_method: str) -> None:
        """Join the learners' process group (NCCL on GPUs, gloo otherwise); sharded ranks then
        shard the policy and the reference over it and build the optimiser on their shards."""
        if self.world_size == 1 and not self.sharded:
            return
        backend = "nccl" if self.config.device.startswith("cuda") else "gloo"
        dist.init_process_group(
            backend, init_method=init_method, rank=self.rank, world_size=self.world_size
        )
        if self.sharded:
            from torch.distributed.device_mesh import init_device_mesh

            mesh = init_device_mesh(torch.device(self.config.device).type, (self.world_size,))
            shard_policy(self.policy, mesh)
            if self.reference is not None:
                shard_policy(self.reference, mesh)
            self.optimizer = build_optimizer(self.policy, self.config)
            self.gather_weights()  # the starting weights, for the workers' layout and first sync

    def _full_state(self) -> dict[str, torch.Tensor]:
        """The full weights: the latest gathered ones when sharded, else the model's own."""
        if self.sharded:
            assert self.gathered, "gather_weights on every rank first"
            return self.gathered
        return self.policy.model.state_dict()

    def gather_weights(self) -> None:
        """Sharded ranks (all of them): gather the full weights onto rank 0 for the weight sync."""
        self.gathered = full_model_state(self.policy)

    def set_learning_rate(self, lr: float) -> None:
        """Use ``lr`` for the next optimiser steps (the driver's schedule)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def optimizer_step(
        self, micro: list[list[Sample]], total_tokens: int, ghosts: list[bool] | None = None
    ) -> dict[str, float]:
        """One optimiser update: this rank's micro-batches, all-reduced gradients, the same step.

        Args:
            micro: This rank's micro-batches of the mini-batch (possibly none).
            total_tokens: Generated tokens of the whole mini-batch (all ranks).
            ghosts: Sharded ranks: True for each micro-batch that only keeps this rank in step
                with the others' collectives (``sharding.deal_in_lockstep``); its loss counts 0.

        Returns:
            The mini-batch's loss statistics (summed over ranks), the gradient norm and
            ``stepped`` (0.0 when a non-finite gradient skipped the update on every rank).
        """
        assert self.optimizer is not None, "join_group first"
        self.optimizer.zero_grad(set_to_none=True)
        flags = iter(ghosts or [False] * len(micro))

        def loss(batch: list[Sample]) -> dict[str, Any]:
            terms = self._loss(batch)
            return {k: v * 0 for k, v in terms.items()} if next(flags) else terms

        stats = accumulate_gradients(loss, micro, total_tokens)
        if self.sharded:
            undo_average(self.policy, self.world_size)
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
        """Sum gradients (unless FSDP2 reduced them already) and statistics over the ranks (each
        holds its token-share-weighted part)."""
        values = torch.tensor([stats[k] for k in LOSS_STATS], dtype=torch.float64)
        if self.sharded:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            return dict(zip(LOSS_STATS, values.tolist()))
        for parameter in self.policy.model.parameters():
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        pending = [
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, async_op=True)
            for p in self.policy.model.parameters()
        ]
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        for work in pending:
            work.wait()
        return dict(zip(LOSS_STATS, values.tolist()))

    def weights(self) -> dict[str, torch.Tensor]:
        """The policy's named tensors on the CPU (what the object-store broadcast ships; sharded:
        those of the latest ``gather_weights``, on rank 0)."""
        return {k: v.detach().to("cpu") for k, v in self._full_state().items()}

    def save_checkpoint(self, step: int, data_state: dict[str, Any]) -> str:
        """Rank 0: write checkpoint ``step`` (weights, optimiser, torch RNG and the driver's state).

        ``data_state`` is the trainer's (``RLTrainer.data_state``), so single-process and
        distributed runs resume from each other's checkpoints. Sharded ranks all call it: the full weights and
        AdamW state are gathered onto rank 0, which writes them (the others return ``""``).
        """
        assert self.optimizer is not None, "join_group first"
        writer: Any = self.policy
        optimizer = self.optimizer.state_dict() if not self.sharded else None
        if self.sharded:
            writer = GatheredWeights(self.policy, full_model_state(self.policy))
            optimizer = full_optimizer_state(self.policy, self.optimizer)
            if self.rank != 0:
                return ""
        state = {**data_state, "optimizer": optimizer, "torch_rng": torch.random.get_rng_state()}
        return str(self.checkpoints.save(step, writer, state))

    def load_checkpoint(self) -> dict[str, Any] | None:
        """Load the newest checkpoint into this rank; returns the driver's part of its state."""
        found = self.checkpoints.load_latest()
        if found is None:
            return None
        model_dir, state = found
        assert self.optimizer is not None, "join_group first"
        if self.sharded:
            load_full_state(self.policy, self.optimizer, model_dir, state["optimizer"])
            torch.random.set_rng_state(state["torch_rng"])
        else:
            restore_learner(self.policy, self.optimizer, model_dir, state)
        return {k: v for k, v in state.items() if k not in ("optimizer", "torch_rng")}

    def save_model(self, folder: str) -> str:
        """Write the policy as a Hugging Face folder (sharded: every rank calls, rank 0 writes)."""
        if not self.sharded:
            return str(self.policy.save(folder))
        writer = GatheredWeights(self.policy, full_model_state(self.policy))
        return str(write_folder_atomically(folder, writer.write_to)) if self.rank == 0 else ""

    def close(self) -> None:
        """Leave the process groups."""
        self.weight_group = None
        if dist.is_initialized():
            dist.destroy_process_group()
