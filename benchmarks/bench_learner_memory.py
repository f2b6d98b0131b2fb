"""Peak memory and seconds of one shared-prompt micro-batch (forward + backward) on SmolLM2.

Each setting runs in its own fresh process, which reports the growth of its peak resident set
(``ru_maxrss``) over what it held with the model loaded, so settings do not see each other's
allocator pages. The default shape is the demo preset's largest update: a 1,200-token turn prefix
and 8 responses of 128 tokens. ``--layers N`` keeps the first N decoder layers (activations grow
linearly with layers) to measure beside other work.

    python -m benchmarks.bench_learner_memory --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from benchmarks.fresh_process import grown_gb, max_rss_kb, run_fresh


def one_run(args: argparse.Namespace) -> dict[str, float]:
    """In this process: load the policy, run one micro-batch, return its peak growth and seconds."""
    import torch

    from ftrl_gym.agents.training.policy import Policy

    torch.set_num_threads(args.threads)
    policy = Policy("smollm2", dtype=args.dtype)
    if args.layers:
        decoder = policy.model.get_decoder()
        decoder.layers = decoder.layers[: args.layers]
        policy.model.config.num_hidden_layers = args.layers
    if args.checkpointing:
        policy.checkpoint_activations()
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(100, 40000, (args.prompt_tokens,), generator=generator).tolist()
    responses = [
        torch.randint(100, 40000, (args.response_tokens,), generator=generator).tolist()
        for _ in range(args.responses)
    ]
    before = max_rss_kb()
    started = time.perf_counter()
    logprobs, _, mask = policy.forward_shared_prompt(prompt, responses, with_entropy=True)
    (logprobs * mask).sum().backward()
    seconds = time.perf_counter() - started
    return {"gb": grown_gb(before), "seconds": seconds}


def main() -> None:
    """Run each setting ``--repeats`` times, alternating, and print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-tokens", type=int, default=1200)
    parser.add_argument("--response-tokens", type=int, default=128)
    parser.add_argument("--responses", type=int, default=8)
    parser.add_argument("--layers", type=int, default=0, help="keep the first N layers [all]")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--checkpointing", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.checkpointing is not None:
        print(json.dumps(one_run(args)))
        return
    results: dict[int, list[dict[str, float]]] = {0: [], 1: []}
    for _ in range(args.repeats):
        for checkpointing in (0, 1):
            argv = [*sys.argv[1:], "--checkpointing", str(checkpointing)]
            results[checkpointing].append(run_fresh("benchmarks.bench_learner_memory", argv))
    layers = args.layers or "all"
    print(
        f"one micro-batch: {args.prompt_tokens}-token prompt, {args.responses} x "
        f"{args.response_tokens} responses, {layers} layers, {args.dtype}, "
        f"{args.threads} thread(s), {args.repeats} run(s) each, medians:"
    )
    for checkpointing, label in ((0, "no checkpointing"), (1, "layers recomputed")):
        runs = results[checkpointing]
        gb = statistics.median(r["gb"] for r in runs)
        seconds = statistics.median(r["seconds"] for r in runs)
        print(f"  {label:18s} +{gb:.2f} GB peak, {seconds:.1f} s forward + backward")


if __name__ == "__main__":
    main()
