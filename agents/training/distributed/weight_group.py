"""The collective weight broadcast: learner rank 0 and every rollout worker in one process group."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

Layout = list[tuple[str, tuple[int, ...], torch.dtype]]
"""Name, shape and dtype of each tensor of a state dict, in its order (sent to workers once)."""

GROUP_TIMEOUT = timedelta(seconds=300)
"""Longest wait of a member for the others (joining, or one broadcast)."""


def layout_of(state: dict[str, torch.Tensor]) -> Layout:
    """The layout of a state dict."""
    return [(name, tuple(tensor.shape), tensor.dtype) for name, tensor in state.items()]


def dtypes_of(layout: Layout) -> list[torch.dtype]:
    """The layout's dtypes in the order they first appear: one flat buffer, one broadcast each."""
    return list(dict.fromkeys(dtype for _, _, dtype in layout))


def pack(
    state: dict[str, torch.Tensor], layout: Layout, device: torch.device
) -> list[torch.Tensor]:
    """The state dict's tensors joined into one flat buffer per dtype (``dtypes_of`` order)."""
    return [
        torch.cat(
            [state[name].detach().reshape(-1) for name, _, kind in layout if kind == dtype]
        ).to(device)
        for dtype in dtypes_of(layout)
    ]


def empty_buffers(layout: Layout, device: torch.device) -> list[torch.Tensor]:
    """Flat receive buffers for the layout, allocated once per group."""
    sizes = {dtype: 0 for dtype in dtypes_of(layout)}
    for _, shape, dtype in layout:
        sizes[dtype] += _numel(shape)
    return [torch.empty(size, dtype=dtype, device=device) for dtype, size in sizes.items()]


def unpack(buffers: list[torch.Tensor], layout: Layout) -> dict[str, torch.Tensor]:
    """Named views into the flat buffers (valid until the next broadcast overwrites them)."""
    flat = dict(zip(dtypes_of(layout), buffers))
    offsets = {dtype: 0 for dtype in flat}
    named = {}
    for name, shape, dtype in layout:
        start, size = offsets[dtype], _numel(shape)
        named[name] = flat[dtype][start : start + size].view(shape)
        offsets[dtype] = start + size
    return named


def _numel(shape: tuple[int, ...]) -> int:
    return int(torch.Size(shape).numel())


def group_backend(learner_device: str, worker_gpus: float) -> str:
    """NCCL when the learner and the workers all sit on GPUs, gloo otherwise."""
    return "nccl" if learner_device.startswith("cuda") and worker_gpus > 0 else "gloo"


class WeightGroup:
    """One member of the weight-broadcast group, apart from any data-parallel default group.

    The group has its own TCP store (rank 0 hosts it at ``host:port``) and its own process group
    object, so it can be formed again with a new port whenever a rollout worker restarts.

    Args:
        host: Address of rank 0's node.
        port: The store's port (chosen by the driver via rank 0).
        rank: This member (0: the learner, 1..: the rollout workers).
        size: Members in all.
        backend: ``gloo`` or ``nccl``.
    """

    def __init__(self, host: str, port: int, rank: int, size: int, backend: str) -> None:
        self.store = dist.TCPStore(
            host, port, size, is_master=rank == 0, timeout=GROUP_TIMEOUT, wait_for_workers=True
        )
        self.backend = backend
        self.device = torch.device("cuda" if backend == "nccl" else "cpu")
        if backend == "nccl":
            self.group = dist.ProcessGroupNCCL(self.store, rank, size)
        else:
            self.group = dist.ProcessGroupGloo(self.store, rank, size, GROUP_TIMEOUT)

    def broadcast(self, buffers: list[torch.Tensor]) -> None:
        """Broadcast each buffer from rank 0 (in place on the other members)."""
        for buffer in buffers:
            self.group.broadcast([buffer], dist.BroadcastOptions()).wait()


class GroupCoordinator:
    """Driver side of the collective broadcast: forms the group and starts one broadcast.

    Args:
        learner: Learner rank 0's actor handle (member 0, the sender).
        backend: ``gloo`` or ``nccl`` (``group_backend``).
    """

    def __init__(self, learner: Any, backend: str) -> None:
        import ray

        self.learner = learner
        self.backend = backend
        self.layout: Layout = ray.get(learner.weight_layout.remote())
        self.formed = False

    def form(self, workers: list[Any]) -> list[Any]:
        """Refs of every member joining a new group on a new port (rank 0 hosts its store)."""
        import ray

        host, port = ray.get(self.learner.weight_rendezvous.remote())
        size = len(workers) + 1
        return [self.learner.join_weight_group.remote(host, port, size, self.backend)] + [
            worker.join_weight_group.remote(host, port, rank, size, self.backend, self.layout)
            for rank, worker in enumerate(workers, start=1)
        ]

    def send(self, workers: list[Any], version: int) -> list[Any]:
        """Refs of rank 0 sending its weights and every worker loading them as ``version``."""
        return [self.learner.send_weights.remote()] + [
            worker.receive_weights.remote(version) for worker in workers
        ]
