"""Per-rank learner bytes (parameters, gradients, AdamW state, reference) of FSDP2 on 1 and 2 gloo ranks.

Each rank is a ``Learner`` with ``learner_sharding=fsdp`` that takes one optimiser step on a short
sample (so the gradients and AdamW moments exist); it then counts the bytes it stores itself (a
``DTensor``'s local shard). Run: ``python benchmarks/bench_fsdp_memory.py [--model smollm2]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
from typing import Any

import torch
import torch.multiprocessing as mp

ITEMS = ("parameters", "gradients", "optimizer", "reference")


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rank_bytes(learner: Any) -> dict[str, int]:
    """The bytes ``learner``'s rank stores for each item."""
    from ftrl_gym.agents.training.distributed.sharding import local_bytes

    params = list(learner.policy.model.parameters())
    moments = [
        value
        for state in learner.optimizer.state.values()
        for key, value in state.items()
        if key != "step"
    ]
    reference = learner.reference.model.parameters() if learner.reference else []
    return {
        "parameters": local_bytes(params),
        "gradients": local_bytes([p.grad for p in params]),
        "optimizer": local_bytes(moments),
        "reference": local_bytes(list(reference)),
    }


def run_rank(rank: int, world: int, port: int, model: str, out: Any) -> None:
    """One rank: build, shard, take a step, report its bytes."""
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    from ftrl_gym.agents.training.config import TrainConfig
    from ftrl_gym.agents.training.learner import Learner
    from ftrl_gym.agents.training.samples import Sample

    config = TrainConfig(model=model, learner_sharding="fsdp", kl_coef=0.001, lr=1e-5)
    with tempfile.TemporaryDirectory() as folder:
        learner = Learner(config.to_dict(), rank, world, folder)
        learner.join_group(f"tcp://127.0.0.1:{port}")
        sample = Sample(
            token_ids=[1, 2, 3, 4, 5, 6, 7, 8],
            loss_mask=[0, 0, 0, 0, 1, 1, 1, 1],
            logprobs=[0.0] * 4 + [-5.0] * 4,
            advantages=[0.0] * 4 + [1.0] * 4,
            group="g",
            score=1.0,
        )
        learner.optimizer_step([[sample]], 4, [rank > 0])  # rank > 0: a ghost pass in step
        out.put((world, rank, rank_bytes(learner)))
        learner.close()


def measure(world: int, model: str) -> list[dict[str, int]]:
    """Each rank's bytes for ``world`` ranks."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = free_port()
    ranks = [
        context.Process(target=run_rank, args=(r, world, port, model, queue)) for r in range(world)
    ]
    for process in ranks:
        process.start()
    found = sorted(queue.get() for _ in ranks)
    for process in ranks:
        process.join()
    return [found_bytes for _, _, found_bytes in found]


def main() -> None:
    """Print the per-rank bytes for 1 and 2 ranks and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2", help="model to shard [smollm2]")
    args = parser.parse_args()
    one = measure(1, args.model)[0]
    two = measure(2, args.model)
    print(f"model: {args.model}; bytes per rank after one AdamW step (FSDP2 on gloo)")
    print("| item | 1 rank | 2 ranks: rank 0 | 2 ranks: rank 1 | rank 0 / 1 rank |")
    print("|---|---|---|---|---|")
    for item in (*ITEMS, "total"):
        single = sum(one.values()) if item == "total" else one[item]
        r0, r1 = (sum(r.values()) if item == "total" else r[item] for r in two)
        ratio = r0 / single if single else float("nan")
        print(f"| {item} | {single:,} | {r0:,} | {r1:,} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
