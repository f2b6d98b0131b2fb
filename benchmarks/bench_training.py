"""Learner cost of one GRPO group: n full sequences against one shared-prompt pass (prints seconds)."""

from __future__ import annotations

import argparse
import time

import torch

from ftrl_gym.agents.training.policy import Policy, make_batch


def time_group(
    policy: Policy, prompt: list[int], responses: list[list[int]], shared: bool
) -> float:
    """Seconds for forward + backward of the summed response logprobs of one group."""
    policy.model.zero_grad(set_to_none=True)
    started = time.perf_counter()
    if shared:
        logprobs = policy.forward_shared_prompt(prompt, responses)[0]
    else:
        masks = [[0] * len(prompt) + [1] * len(r) for r in responses]
        logprobs = policy.forward(
            make_batch([prompt + r for r in responses], masks, policy.pad_id)
        )[0]
    logprobs.sum().backward()
    return time.perf_counter() - started


def main() -> None:
    """Time both learner passes on SmolLM2-135M-Instruct with a prompt as long as a turn prefix."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompt-tokens", type=int, default=600)
    parser.add_argument("--response-tokens", type=int, default=60)
    parser.add_argument("--responses", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = Policy("smollm2")
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(100, 40000, (args.prompt_tokens,), generator=generator).tolist()
    responses = [
        torch.randint(100, 40000, (args.response_tokens,), generator=generator).tolist()
        for _ in range(args.responses)
    ]
    full = time_group(policy, prompt, responses, shared=False)
    shared = time_group(policy, prompt, responses, shared=True)
    print(
        f"group of {args.responses} x ({args.prompt_tokens} prompt + {args.response_tokens}) tokens, "
        f"{args.threads} thread(s): full sequences {full:.1f} s, shared prompt {shared:.1f} s, "
        f"speed-up {full / shared:.2f}x"
    )


if __name__ == "__main__":
    main()
