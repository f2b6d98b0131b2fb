"""After a weight sync, the vLLM engine's logprobs of its sampled tokens equal the learner's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import tiny_model

from agents.training.generation import SamplingSettings, TransformersGenerator
from agents.training.policy import Policy, make_batch

SYNC_TOLERANCE = 1e-3
"""Largest |vLLM logprob - learner logprob| accepted after a sync (float32 on both sides; the kernels
differ, so agreement is to rounding, measured around 1e-5 on SmolLM2-135M)."""


def _learner_logprobs(policy: Policy, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    batch = make_batch([prompt + tokens], [[0] * len(prompt) + [1] * len(tokens)], policy.pad_id)
    with torch.no_grad():
        logprobs, _ = policy.forward(batch)
    return logprobs[0, len(prompt) - 1 :]


@pytest.mark.slow
def test_vllm_logprobs_match_the_learner_after_a_sync(tokenizer, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    from agents.training.generation import VLLMGenerator

    # vLLM's CPU attention needs a head size it has kernels for: 128 / 2 heads = 64, as in SmolLM2.
    policy = Policy(tiny_model(tokenizer, focused=True, hidden_size=128, heads=2), tokenizer)
    folder = policy.save(tmp_path / "start")
    generator = VLLMGenerator(
        str(folder),
        seed=0,
        max_model_len=512,
        kv_cache_gib=0.25,
        dtype="float32",
        eos_ids=policy.eos_ids(),
    )
    try:
        with torch.no_grad():
            for parameter in policy.model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        prompt = tokenizer.encode("<|im_start|>user\nSay w.<|im_end|>\n<|im_start|>assistant\n")
        settings = SamplingSettings(n=2, max_new_tokens=8)
        stale = generator.generate([prompt], settings)[0][0]
        stale_gap = (
            (_learner_logprobs(policy, prompt, stale.token_ids) - torch.tensor(stale.logprobs))
            .abs()
            .max()
        )
        generator.sync_weights(policy.model)
        for completion in generator.generate([prompt], settings)[0]:
            learner = _learner_logprobs(policy, prompt, completion.token_ids)
            assert len(completion.token_ids) == 8
            assert (learner - torch.tensor(completion.logprobs)).abs().max() < SYNC_TOLERANCE
    finally:
        generator.close()
    assert stale_gap > 100 * SYNC_TOLERANCE  # before the sync the engine held other weights


def test_transformers_generator_reports_the_learners_logprobs(tokenizer) -> None:
    policy = Policy(tiny_model(tokenizer, focused=True), tokenizer)
    generator = TransformersGenerator(policy.model, policy.eos_ids(), policy.pad_id, batch_size=4)
    prompts = [
        tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n"),
        tokenizer.encode("<|im_start|>user\nA longer one<|im_end|>\n"),
    ]
    torch.manual_seed(0)
    groups = generator.generate(prompts, SamplingSettings(n=2, max_new_tokens=5))
    assert [len(g) for g in groups] == [2, 2]
    for prompt, group in zip(prompts, groups):
        for completion in group:
            learner = _learner_logprobs(policy, prompt, completion.token_ids)
            assert (learner - torch.tensor(completion.logprobs)).abs().max() < 1e-4
