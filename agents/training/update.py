"""The policy update's maths: micro-batches, the PPO / KL / entropy loss, gradient accumulation, clipped steps.

Pure functions over a ``Policy`` and its optimiser, shared by every learner (``learner.Learner``, in one
process or as a Ray rank) and by the tests that check them against hand-computed values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ftrl_gym.agents.training.config import TrainConfig
from ftrl_gym.agents.training.losses import (
    kl_loss,
    ppo_clipped_policy_loss,
    truncated_importance_weights,
)
from ftrl_gym.agents.training.masked import masked_mean
from ftrl_gym.agents.training.policy import Policy, make_batch, pad_rows
from ftrl_gym.agents.training.samples import Sample

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredBatch:
    """A micro-batch scored by a policy, with its per-token values aligned to the predictions.

    Attributes:
        logprobs: ``(B, W)`` logprobs of the generated tokens (0 elsewhere).
        entropy: ``(B, W)`` entropies, or None.
        mask: ``(B, W)`` 1.0 where a generated token is predicted.
        offset: Column ``j`` predicts token ``offset + j`` of each sample (the shared prompt's
            length, or 1 for full sequences).
    """

    logprobs: torch.Tensor
    entropy: torch.Tensor | None
    mask: torch.Tensor
    offset: int

    def aligned(self, rows: list[list[float]]) -> torch.Tensor:
        """``(B, W)`` per-token values (one list per sample, indexed like its ``token_ids``)."""
        width = self.mask.shape[1]
        return pad_rows([row[self.offset :] for row in rows], width).to(self.mask.device)


def score_micro_batch(policy: Policy, micro: list[Sample], with_entropy: bool) -> ScoredBatch:
    """Run ``policy`` over a micro-batch: logprobs (and entropies) of its generated tokens.

    Responses to one turn prefix (scheme a) share their prompt, which then runs once
    (``Policy.forward_shared_prompt``, same values and gradients as full sequences).
    """
    prompt_length = shared_prompt_length(micro)
    if prompt_length:
        prompt = micro[0].token_ids[:prompt_length]
        responses = [s.token_ids[prompt_length:] for s in micro]
        logprobs, entropy, mask = policy.forward_shared_prompt(prompt, responses, with_entropy)
        return ScoredBatch(logprobs, entropy, mask, prompt_length)
    batch = make_batch([s.token_ids for s in micro], [s.loss_mask for s in micro], policy.pad_id)
    logprobs, entropy = policy.forward(batch, with_entropy=with_entropy)
    return ScoredBatch(logprobs, entropy, batch.loss_mask.to(logprobs.device), 1)


def micro_batch_loss(
    policy: Policy, reference: Policy | None, config: TrainConfig, micro: list[Sample]
) -> dict[str, Any]:
    """A micro-batch's loss: PPO clipped policy loss + ``kl_coef`` KL - ``entropy_coef`` entropy.

    The policy loss is dual-clipped (``config.dual_clip``); with ``config.tis_cap`` and recomputed
    old logprobs each token's term is weighted by its truncated importance weight.
    """
    scored = score_micro_batch(policy, micro, True)
    logprobs, mask = scored.logprobs, scored.mask
    old = scored.aligned([s.logprobs for s in micro])
    advantages = scored.aligned([s.advantages for s in micro])
    weights = None
    if config.tis_cap and all(s.rollout_logprobs for s in micro):
        rollout = scored.aligned([s.rollout_logprobs for s in micro])
        weights = truncated_importance_weights(old, rollout, config.tis_cap)
    clipped = ppo_clipped_policy_loss(
        logprobs,
        old,
        advantages,
        mask,
        config.clip_low,
        config.clip_high,
        config.dual_clip,
        weights,
    )
    kl = torch.zeros((), device=logprobs.device)
    if reference is not None:
        with torch.no_grad():
            ref_logprobs = score_micro_batch(reference, micro, False).logprobs
        kl = kl_loss(logprobs, ref_logprobs, mask)
    entropy = scored.entropy
    mean_entropy = (
        masked_mean(entropy, mask) if entropy is not None else torch.zeros((), device=mask.device)
    )
    loss = clipped.loss + config.kl_coef * kl - config.entropy_coef * mean_entropy
    return {
        "loss": loss,
        "policy_loss": clipped.loss.detach(),
        "kl": kl.detach(),
        "entropy": mean_entropy.detach(),
        "clip_fraction": clipped.clip_fraction,
        "dual_clip_fraction": clipped.dual_clip_fraction,
        "approx_kl": clipped.approx_kl,
    }


def recompute_old_logprobs(
    policy: Policy, samples: list[Sample], micro_batch_size: int, max_tokens: int = 0
) -> None:
    """Replace each sample's old logprobs by the learner's own, keeping the generator's aside.

    The PPO ratio then starts at exactly 1 whatever precision the generator sampled in; the
    generator's logprobs move to ``rollout_logprobs`` for the truncated importance weight
    (``config.tis_cap``).

    Args:
        policy: The learner before this batch's update.
        samples: The batch (changed in place).
        micro_batch_size: Samples per forward pass.
        max_tokens: Token budget per forward pass (``micro_batches``; 0: by ``micro_batch_size``).
    """
    with torch.no_grad():
        for micro in micro_batches(samples, micro_batch_size, max_tokens):
            scored = score_micro_batch(policy, micro, False)
            for row, sample in enumerate(micro):
                values = scored.logprobs[row].tolist()
                recomputed = list(sample.logprobs)
                for position in range(scored.offset, len(sample.token_ids)):
                    if sample.loss_mask[position]:
                        recomputed[position] = values[position - scored.offset]
                sample.rollout_logprobs = list(sample.logprobs)
                sample.logprobs = recomputed


def build_reference(policy: Policy, config: TrainConfig) -> Policy | None:
    """The frozen copy of the starting policy that the KL term needs (None when ``kl_coef`` is 0)."""
    return policy.frozen_copy() if config.kl_coef > 0 else None


def adamw(
    params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per step wherever torch has one for the parameters.

    Plain float tensors on a CPU or a CUDA device take the fused step, which updates every weight
    and both moments in place: torch's default multi-tensor step builds parameter-sized temporaries
    (``python -m benchmarks.bench_optimizer``: on SmolLM2-135M it held 0.54 GB more at its
    peak and took 6.5 times as long per step on one CPU thread). FSDP2's DTensor shards keep
    torch's default.
    """
    params = list(params)
    fused = all(
        type(p.data) is torch.Tensor
        and p.device.type in ("cpu", "cuda")
        and p.dtype.is_floating_point
        for p in params
    )
    return torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, fused=True if fused else None
    )


def build_optimizer(policy: Policy, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the policy's trainable parameters (all, or the LoRA adapters) with the configured
    learning rate and weight decay."""
    trainable = [p for p in policy.model.parameters() if p.requires_grad]
    return adamw(trainable, config.lr, config.weight_decay)


LOSS_STATS = (
    "loss",
    "policy_loss",
    "kl",
    "entropy",
    "clip_fraction",
    "dual_clip_fraction",
    "approx_kl",
)
"""The loss terms ``accumulate_gradients`` reports, each a token-share-weighted mean."""


def generated_tokens(samples: list[Sample]) -> int:
    """Generated tokens (the loss-mask total) of ``samples``, at least 1."""
    return sum(sum(s.loss_mask) for s in samples) or 1


def accumulate_gradients(
    loss_fn: Callable[[list[Sample]], dict[str, Any]],
    micro: list[list[Sample]],
    total_tokens: int,
) -> dict[str, float]:
    """Backward every micro-batch's loss weighted by its share of ``total_tokens``; sum the stats.

    With ``total_tokens`` the whole mini-batch's count, data-parallel ranks that each take some of
    the micro-batches sum (all-reduce) to exactly the single-process gradient and stats.
    """
    stats = dict.fromkeys(LOSS_STATS, 0.0)
    for batch in micro:
        share = generated_tokens(batch) / total_tokens
        terms = loss_fn(batch)
        (terms["loss"] * share).backward()
        for key in stats:
            stats[key] += float(torch.as_tensor(terms[key]).detach()) * share
    return stats


def clip_and_step(
    policy: Policy, optimizer: torch.optim.Optimizer, max_grad_norm: float
) -> tuple[float, bool]:
    """Clip the gradient norm (0: no clipping) and take the optimiser step, unless it is not finite.

    A NaN or infinite gradient (an overflow in low precision, a corrupt sample) would write NaN
    into every weight and the AdamW moments for good: its gradients are dropped instead, the
    optimiser does not step, and the skip is logged (the trainer counts ``skipped_updates``).

    Returns:
        The gradient norm before clipping, and whether the optimiser stepped.
    """
    norm = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), max_grad_norm or float("inf"))
    if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor norm over the ranks' shards
        norm = norm.full_tensor()
    if not torch.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        LOGGER.warning("skipped an optimiser update: the gradient norm is %s", float(norm))
        return float(norm), False
    optimizer.step()
    return float(norm), True


def restore_learner(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    model_dir: Path,
    state: dict[str, Any],
) -> None:
    """Load a checkpoint's (float32 master) weights or LoRA adapters, optimiser state and torch RNG
    into a learner."""
    if (model_dir / "adapter_config.json").is_file():
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        adapters = load_file(model_dir / "adapter_model.safetensors", device=str(policy.device))
        set_peft_model_state_dict(policy.model, adapters)
    else:
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        policy.model.load_state_dict(loaded.state_dict())
    optimizer.load_state_dict(state["optimizer"])
    torch.random.set_rng_state(state["torch_rng"])


def micro_batches(mini: list[Sample], size: int, max_tokens: int = 0) -> list[list[Sample]]:
    """Split a mini-batch into micro-batches, never across groups.

    Without ``max_tokens``, at most ``size`` samples each. With it (verl's
    ``ppo_max_token_len_per_gpu``), each micro-batch takes the group's next samples while the
    tokens its forward pass runs (``micro_batch_tokens``) stay within ``max_tokens``, whatever their
    number; a sample over the budget alone goes alone. Gradients accumulate by token share, so the
    update is the same for any split; only the activation memory and the speed change.

    Args:
        mini: The mini-batch.
        size: Most samples per micro-batch (used when ``max_tokens`` is 0).
        max_tokens: Token budget per micro-batch (0: split by ``size``).

    Returns:
        The micro-batches, group by group, in order.
    """
    groups: dict[str, list[Sample]] = {}
    for sample in mini:
        groups.setdefault(sample.group, []).append(sample)
    if not max_tokens:
        return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
    out: list[list[Sample]] = []
    for group in groups.values():
        current: list[Sample] = []
        for sample in group:
            if current and micro_batch_tokens([*current, sample]) > max_tokens:
                out.append(current)
                current = []
            current.append(sample)
        out.append(current)
    return out


def micro_batch_tokens(samples: list[Sample]) -> int:
    """Token positions one forward pass over ``samples`` runs: a shared prompt once plus each
    response (``score_micro_batch``'s shared-prompt path), else every row padded to the longest."""
    prompt = shared_prompt_length(samples)
    if prompt:
        return prompt + sum(len(s.token_ids) - prompt for s in samples)
    return len(samples) * max(len(s.token_ids) for s in samples)


def shared_prompt_length(samples: list[Sample]) -> int:
    """Length of the prompt all samples share when each is that prompt plus generated ids, else 0."""
    first = samples[0]
    length = first.loss_mask.index(1) if 1 in first.loss_mask else 0
    if length < 2:
        return 0
    prompt = first.token_ids[:length]
    for sample in samples:
        if sample.token_ids[:length] != prompt or sample.loss_mask[:length].count(1):
            return 0
        if sample.loss_mask[length:].count(0) or len(sample.token_ids) == length:
            return 0
    return length
