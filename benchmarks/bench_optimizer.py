"""Peak memory and seconds of an AdamW step on SmolLM2-135M's parameters: fused against torch's default.

Each variant runs in its own fresh process: it loads the model, gives every parameter a random
gradient, and reports the growth of its peak resident set (``ru_maxrss``) over the first steps (the
two moments, 8 bytes per parameter, plus whatever the step allocates on the side) and the median
seconds of the later steps. ``fused`` is what the trainer builds (``update.adamw``).

    python -m benchmarks.bench_optimizer --steps 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from benchmarks.fresh_process import grown_gb, max_rss_kb, run_fresh

VARIANTS = {
    "foreach": {"foreach": True},
    "for-loop": {"foreach": False},
    "fused": None,
}
"""torch's default multi-tensor step, its single-tensor loop, and the trainer's optimizer
(``update.adamw``, the fused kernel for these CPU float parameters)."""


def one_run(variant: str, steps: int, threads: int) -> dict[str, float]:
    """In this process: ``steps`` AdamW steps of ``variant``; peak growth (GB) and median seconds."""
    import torch
    from ftrl_gym.agents.models import resolve_model
    from ftrl_gym.agents.training.update import adamw
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2"), dtype=torch.float32)
    params = list(model.parameters())
    for param in params:
        param.grad = torch.randn_like(param)
    options = VARIANTS[variant]
    if options is None:
        optimizer = adamw(params, lr=1e-5, weight_decay=0.0)
    else:
        optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0, **options)
    before = max_rss_kb()
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        optimizer.step()
        seconds.append(time.perf_counter() - started)
    return {"gb": grown_gb(before), "seconds": statistics.median(seconds[1:] or seconds)}


def main() -> None:
    """Run each variant in a fresh process and print its peak growth and step time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(one_run(args.variant, args.steps, args.threads)))
        return
    print(f"AdamW on SmolLM2-135M, {args.steps} steps, {args.threads} thread(s), fresh process each:")
    for variant in VARIANTS:
        result = run_fresh("benchmarks.bench_optimizer", [*sys.argv[1:], "--variant", variant])
        print(f"  {variant:8s} +{result['gb']:.2f} GB peak, {result['seconds']:.2f} s per step (median)")


if __name__ == "__main__":
    main()
