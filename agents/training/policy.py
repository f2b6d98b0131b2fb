"""The learner: a Hugging Face causal LM scoring given token ids (logprobs, entropy), saved in HF format."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ftrl_gym.agents.atomic import write_folder_atomically
from ftrl_gym.agents.models import resolve_model
from ftrl_gym.agents.training.config import DTYPES


LOGIT_CHUNK = 256
"""Rows of logits computed at once when scoring tokens (``Policy.token_scores``): 50 MB of float32
logits for SmolLM2's 49,152-token vocabulary."""


@dataclass
class TokenBatch:
    """Right-padded sequences for one forward pass.

    Attributes:
        input_ids: ``(B, L)`` token ids, padded with ``pad_id``.
        attention_mask: ``(B, L)`` 1 on real tokens.
        loss_mask: ``(B, L - 1)`` 1 where the *next* token is one the policy generated (aligned with
            the predictions: position ``t`` predicts token ``t + 1``).
        targets: ``(B, L - 1)`` the next token at each position.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    targets: torch.Tensor


def make_batch(
    sequences: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], pad_id: int
) -> TokenBatch:
    """Pad sequences and their generated-token masks into a ``TokenBatch``."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.float32)
    for row, (seq, m) in enumerate(zip(sequences, masks)):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention[row, : len(seq)] = 1
        mask[row, : len(m)] = torch.tensor(m, dtype=torch.float32)
    return TokenBatch(ids, attention, mask[:, 1:], ids[:, 1:])


def pad_rows(rows: Sequence[Sequence[float]], width: int) -> torch.Tensor:
    """``(B, width)`` float tensor of per-token values, zero-padded on the right."""
    out = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(list(row), dtype=torch.float32)
    return out


def compute_autocast(
    device: torch.device, dtype: torch.dtype
) -> contextlib.AbstractContextManager[Any]:
    """Low-precision compute over float32 weights (``torch.autocast``); nothing to do in float32.

    Matmuls run in ``dtype`` (bf16 on CPUs and GPUs, fp16 on GPUs) on bf16 casts of the float32
    weights; the parameters, their gradients and the optimiser state stay float32, so an update of
    ``lr * 1`` moves a weight that bf16's 8-bit mantissa would round back to where it was.
    """
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class Policy:
    """A causal LM and its tokenizer; computes what the losses need from given token ids.

    The weights are float32 master weights whatever ``dtype`` is; ``dtype`` is the compute precision
    of the forward passes (mixed precision by ``torch.autocast``). Log-softmax, entropies and every
    loss reduction run in float32.

    Args:
        model: ``"smollm2"``, a ``.gguf`` or a transformers folder (``ftrl_gym.agents.models.resolve_model``),
            or an already built ``PreTrainedModel`` (tests; cast to float32).
        tokenizer: Required when ``model`` is a module; loaded from the folder otherwise.
        dtype: Torch dtype name of the compute (``float32``, ``bfloat16`` or ``float16``).
        device: Torch device.
        temperature: The sampling temperature ``T``: logprobs and entropies are those of
            ``softmax(logits / T)``, the distribution rollouts are drawn from, so that the importance
            ratio and the policy gradient refer to the policy that acted.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        dtype: str = "float32",
        device: str = "cpu",
        temperature: float = 1.0,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(model, str):
            self.path = resolve_model(model)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(self.path)
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32)
        else:
            self.path = ""
        if tokenizer is None:
            raise ValueError("pass the tokenizer together with a model object")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
        self.compute_dtype: torch.dtype = getattr(torch, dtype)
        self.model = model.to(device=device, dtype=torch.float32)
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.temperature = float(temperature)
        self.pad_id = int(
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context the forward passes run in (``compute_autocast`` at this policy's dtype)."""
        return compute_autocast(self.device, self.compute_dtype)

    def eos_ids(self) -> set[int]:
        """Token ids that end an assistant turn (the tokenizer's eos and the generation config's)."""
        ids = getattr(self.model.generation_config, "eos_token_id", None)
        ids = set(ids if isinstance(ids, list) else [ids]) - {None}
        return {int(i) for i in ids} | {int(self.tokenizer.eos_token_id)}

    def forward(
        self, batch: TokenBatch, with_entropy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probabilities of the generated tokens (and the entropy of the policy there).

        The output projection (hidden to vocabulary, the widest matrix of a small model) runs only at
        positions that predict a generated token; other positions get 0.

        Args:
            batch: The sequences.
            with_entropy: Also return the entropy of the predicted distribution.

        Returns:
            ``(B, L - 1)`` logprobs of ``batch.targets``, and ``(B, L - 1)`` entropies or None.
        """
        rows, cols = batch.loss_mask.to(self.device).nonzero(as_tuple=True)
        with self.autocast():
            hidden = self.model.get_decoder()(
                input_ids=batch.input_ids.to(self.device),
                attention_mask=batch.attention_mask.to(self.device),
            ).last_hidden_state[:, :-1]  # (B, L-1, H): position t predicts token t+1
        targets = batch.targets.to(self.device)[rows, cols]
        values, entropies = self.token_scores(hidden[rows, cols], targets, with_entropy)
        chosen = torch.zeros(hidden.shape[:2], device=self.device).index_put((rows, cols), values)
        if entropies is None:
            return chosen, None
        entropy = torch.zeros(hidden.shape[:2], device=self.device).index_put(
            (rows, cols), entropies
        )
        return chosen, entropy

    def token_scores(
        self, hidden: torch.Tensor, targets: torch.Tensor, with_entropy: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logprobs of ``targets`` (and entropies) from hidden states, ``LOGIT_CHUNK`` rows at once.

        The ``(N, V)`` logits are the largest activation of a small model (49,152 columns for
        SmolLM2: 200 MB per copy at N = 1,024, and the softmax, its log and the entropy keep several
        copies for the backward pass). Each chunk of rows runs under activation checkpointing, so
        only its hidden rows are kept and its logits are recomputed in the backward pass: at most
        one chunk's ``(LOGIT_CHUNK, V)`` logits live at a time. Values and gradients are unchanged.

        Args:
            hidden: ``(N, H)`` final hidden states of the predicting positions.
            targets: ``(N,)`` the tokens they predict.
            with_entropy: Also return the entropy at each position.

        Returns:
            ``(N,)`` logprobs, and ``(N,)`` entropies or None.
        """
        from torch.utils.checkpoint import checkpoint

        values, entropies = [], []
        for start in range(0, hidden.shape[0], LOGIT_CHUNK):
            rows = hidden[start : start + LOGIT_CHUNK]
            chunk_targets = targets[start : start + LOGIT_CHUNK]
            if torch.is_grad_enabled() and rows.requires_grad:
                scored = checkpoint(
                    self._chunk_scores, rows, chunk_targets, with_entropy, use_reentrant=False
                )
            else:
                scored = self._chunk_scores(rows, chunk_targets, with_entropy)
            values.append(scored[0])
            entropies.append(scored[-1])
        if not values:
            empty = hidden.new_zeros(0, dtype=torch.float32)
            return empty, (empty if with_entropy else None)
        return torch.cat(values), (torch.cat(entropies) if with_entropy else None)

    def _chunk_scores(
        self, hidden: torch.Tensor, targets: torch.Tensor, with_entropy: bool
    ) -> torch.Tensor:
        """``(1, n)`` logprobs of ``targets``; ``(2, n)`` with the entropies as a second row."""
        with self.autocast():
            projected = self.model.get_output_embeddings()(hidden)  # (n, V)
        logprobs = torch.log_softmax(projected.float() / self.temperature, dim=-1)
        chosen = logprobs.gather(-1, targets[:, None])[:, 0]
        if not with_entropy:
            return chosen[None]
        return torch.stack([chosen, -(logprobs.exp() * logprobs).sum(dim=-1)])

    def forward_shared_prompt(
        self, prompt: Sequence[int], responses: Sequence[Sequence[int]], with_entropy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Logprobs of ``n`` responses to one prompt, running the prompt once (exact gradients).

        The prompt less its last token runs once with a KV cache (gradients kept); the cache is
        repeated ``n`` times and ``[last prompt token] + response[:-1]`` runs on it, so position ``j``
        predicts ``response[j]``. The backward pass sums the ``n`` responses' gradients into the one
        prompt pass, which gives the same gradient as ``n`` full sequences at a fraction of the cost
        when prompts are long (turn prefixes hold the tool schemas and the whole conversation).

        Args:
            prompt: The shared context ids (at least 2).
            responses: The generated ids of each response (each non-empty).
            with_entropy: Also return the entropy at each response position.

        Returns:
            ``(n, R)`` logprobs, ``(n, R)`` entropies or None, and the ``(n, R)`` mask of real tokens.
        """
        decoder = self.model.get_decoder()
        with self.autocast():
            cached = decoder(
                input_ids=torch.tensor([list(prompt[:-1])], device=self.device), use_cache=True
            )
        cache = cached.past_key_values
        cache.batch_repeat_interleave(len(responses))
        width = max(len(r) for r in responses)
        inputs = torch.full((len(responses), width), int(prompt[-1]), dtype=torch.long)
        targets = torch.zeros((len(responses), width), dtype=torch.long)
        mask = torch.zeros((len(responses), width), dtype=torch.float32)
        for row, response in enumerate(responses):
            inputs[row, 1 : len(response)] = torch.tensor(list(response[:-1]), dtype=torch.long)
            targets[row, : len(response)] = torch.tensor(list(response), dtype=torch.long)
            mask[row, : len(response)] = 1.0
        # Right padding after each response: causal attention keeps real positions from seeing it.
        rows, cols = mask.nonzero(as_tuple=True)
        with self.autocast():
            hidden = decoder(
                input_ids=inputs.to(self.device), past_key_values=cache
            ).last_hidden_state  # (n, R, H)
        values, entropies = self.token_scores(
            hidden[rows, cols], targets[rows, cols].to(self.device), with_entropy
        )
        out = torch.zeros(mask.shape, device=self.device).index_put((rows, cols), values)
        entropy = None
        if entropies is not None:
            entropy = torch.zeros(mask.shape, device=self.device).index_put((rows, cols), entropies)
        return out, entropy, mask.to(self.device)

    def add_lora(self, rank: int, alpha: float, targets: str = "all-linear") -> None:
        """Train low-rank adapters instead of every weight (LoRA through PEFT).

        Each targeted linear layer ``W`` becomes ``W + (alpha / rank) B A`` with ``A`` (rank x in)
        and ``B`` (out x rank, zero at the start, so the policy is unchanged until it trains); only
        ``A`` and ``B`` require gradients, so the optimiser state is that of the adapters and
        checkpoints (``write_to``) hold the adapters alone. ``save`` writes the merged model.

        Args:
            rank: The adapters' rank ``r``.
            alpha: The scale numerator (the update is scaled by ``alpha / rank``).
            targets: ``all-linear`` (every linear layer but the output head) or comma-separated
                module names such as ``q_proj,v_proj``.
        """
        from peft import LoraConfig, get_peft_model

        modules: str | list[str] = (
            targets if targets == "all-linear" else [t.strip() for t in targets.split(",")]
        )
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            target_modules=modules,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(self.model, config)

    @property
    def has_lora(self) -> bool:
        """Whether the model trains LoRA adapters (``add_lora``)."""
        return hasattr(self.model, "peft_config")

    def frozen_copy(self) -> Policy:
        """A frozen twin (a KL reference) computing in the same precision.

        With low-precision compute its weights are stored in that precision too: no optimiser steps
        them, so bf16 halves their bytes.
        """
        twin = Policy(
            copy.deepcopy(self.model),
            self.tokenizer,
            dtype=str(self.compute_dtype).removeprefix("torch."),
            device=str(self.device),
            temperature=self.temperature,
        )
        twin.model.to(self.compute_dtype)
        twin.model.eval()
        twin.model.requires_grad_(False)
        return twin

    def save(self, folder: str | Path) -> Path:
        """Write weights, config and tokenizer in Hugging Face format (loadable by the agents; with
        LoRA, the merged model).

        The folder appears whole or not at all (``write_folder_atomically``): a pipeline that finds a
        model's ``config.json`` after a kill can trust the weights beside it.
        """
        return write_folder_atomically(folder, self.write_merged_to)

    def write_to(self, folder: Path) -> None:
        """Write the Hugging Face files into the existing ``folder`` (not atomic: see ``save``).

        With LoRA only the adapters are written (``adapter_config.json``,
        ``adapter_model.safetensors``): the checkpoint of a run that trains them.
        """
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)

    def write_merged_to(self, folder: Path) -> None:
        """Write a plain Hugging Face model (LoRA adapters merged into a copy of the weights)."""
        model = copy.deepcopy(self.model).merge_and_unload() if self.has_lora else self.model
        model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
