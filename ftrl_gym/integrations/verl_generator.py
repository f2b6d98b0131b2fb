"""A transformers causal LM behind verl's rollout-server ``generate`` interface, for runs on CPU."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from verl.workers.rollout.replica import TokenOutput


class TransformersTokenServer:
    """Token in, token out generation with ``model.generate``, shaped like verl's vLLM server.

    verl's ``LLMServerClient`` calls ``server.generate.remote(request_id=..., prompt_ids=...,
    sampling_params=...)`` on a Ray actor and expects a ``TokenOutput``; wrap this class with
    ``ray.remote`` and register the handle with verl's load balancer
    (``verl.workers.rollout.router.get_router_handle({"name": handle})``). Requests run one at a time.

    Args:
        model_path: A local model folder (e.g. ``ftrl_gym.agents.models.resolve_model("smollm2")``).
        max_new_tokens: Tokens per request when ``sampling_params`` has no ``max_tokens``.
        seed: Seed of request ``i``'s sampling is ``seed + i``.
    """

    def __init__(self, model_path: str, max_new_tokens: int = 64, seed: int = 0) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True).eval()
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.requests = 0

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        **kwargs: Any,
    ) -> TokenOutput:
        """Generate one continuation, stopping after the end-of-turn token.

        Args:
            request_id: verl's request id (unused: there is no cache to stick to).
            prompt_ids: The context.
            sampling_params: ``temperature`` (0 = greedy), ``top_p``, ``top_k`` (-1 = off),
                ``max_tokens`` and ``logprobs`` (return each token's log-probability).
            **kwargs: verl's multimodal and priority keywords (unused).

        Returns:
            The generated ids (with the end-of-turn token when generation stopped on it).
        """
        torch.manual_seed(self.seed + self.requests)
        self.requests += 1
        temperature = float(sampling_params.get("temperature", 1.0))
        top_k = int(sampling_params.get("top_k", -1))
        with torch.no_grad():
            out = self.model.generate(
                input_ids=torch.tensor([prompt_ids]),
                attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                max_new_tokens=int(sampling_params.get("max_tokens") or self.max_new_tokens),
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=float(sampling_params.get("top_p", 1.0)) if temperature > 0 else None,
                top_k=top_k if temperature > 0 and top_k > 0 else None,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
        ids = out.sequences[0, len(prompt_ids) :].tolist()
        if self.tokenizer.eos_token_id in ids:
            ids = ids[: ids.index(self.tokenizer.eos_token_id) + 1]
        log_probs = None
        if sampling_params.get("logprobs"):
            scores = self.model.compute_transition_scores(
                out.sequences, out.scores, normalize_logits=True
            )
            log_probs = scores[0, : len(ids)].tolist()
        return TokenOutput(
            token_ids=ids, log_probs=log_probs, stop_reason="completed", num_preempted=0
        )
