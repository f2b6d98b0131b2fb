"""The learner: a Hugging Face causal LM scoring given token ids (logprobs, entropy), saved in HF format."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint as recompute_in_backward

from ftrl_gym.agents.atomic import write_folder_atomically
from ftrl_gym.agents.models import resolve_model
from ftrl_gym.agents.training.config import DTYPES
from ftrl_gym.agents.training.losses import entropy_from_logprobs
from ftrl_gym.agents.training.memory_plan import LOGIT_CHUNK


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


class ScoringModule(torch.nn.Module):
    """A causal LM's decoder and output head as one ``forward`` that scores tokens (FSDP2's root).

    The policy never runs the LM's own ``forward``: it projects to the vocabulary only at the
    positions it scores, ``LOGIT_CHUNK`` rows at a time, each chunk under activation checkpointing.
    The ``(N, V)`` logits are a small model's largest activation (49,152 columns for SmolLM2: 200 MB
    per copy at N = 1,024, and the softmax, its log and the entropy keep several copies for the
    backward pass); chunked, only a chunk's hidden rows are kept and its logits are recomputed in
    the backward pass, so at most one chunk's logits live at a time, with the same values and
    gradients. Going through this module's forward is what lets FSDP2 gather the root's parameters
    (embeddings, final norm, head) in its hooks.

    Args:
        model: The causal LM (shared, not copied).
        temperature: Logprobs and entropies are those of ``softmax(logits / temperature)``.
    """

    def __init__(self, model: torch.nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: tuple[torch.Tensor, torch.Tensor],
        targets: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        with_entropy: bool = False,
    ) -> torch.Tensor:
        """Run the decoder; score ``targets`` from its hidden states at ``positions``.

        Args:
            input_ids: ``(B, L)`` token ids.
            positions: ``(rows, cols)`` of the ``N`` hidden states that predict ``targets``.
            targets: ``(N,)`` the tokens they predict.
            attention_mask: ``(B, L)`` 1 on real tokens, a ``(B, 1, L, L)`` boolean mask (True:
                attend), or None (causal).
            position_ids: ``(B, L)`` rotary positions, or None (``0 .. L - 1``).
            with_entropy: Also compute the entropy at each position.

        Returns:
            ``(1, N)`` float32 logprobs, or ``(2, N)`` with the entropies as the second row.
        """
        hidden = self.model.get_decoder()(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state[positions]  # (N, H)
        chunks = []
        for start in range(0, hidden.shape[0], LOGIT_CHUNK):
            rows = hidden[start : start + LOGIT_CHUNK]
            chunk_targets = targets[start : start + LOGIT_CHUNK]
            if torch.is_grad_enabled() and rows.requires_grad:
                chunks.append(recompute_in_backward(
                    self._chunk_scores, rows, chunk_targets, with_entropy, use_reentrant=False
                ))
            else:
                chunks.append(self._chunk_scores(rows, chunk_targets, with_entropy))
        if not chunks:
            return hidden.new_zeros((2 if with_entropy else 1, 0), dtype=torch.float32)
        return torch.cat(chunks, dim=1)

    def _chunk_scores(
        self, hidden: torch.Tensor, targets: torch.Tensor, with_entropy: bool
    ) -> torch.Tensor:
        """``(1, n)`` logprobs of ``targets``, or ``(2, n)`` with the entropies as a second row."""
        projected = self.model.get_output_embeddings()(hidden)  # (n, V)
        logprobs = torch.log_softmax(projected.float() / self.temperature, dim=-1)
        chosen = logprobs.gather(-1, targets[:, None])[:, 0]
        if not with_entropy:
            return chosen[None]
        return torch.stack([chosen, entropy_from_logprobs(logprobs)])


def pack_responses(
    prompt: Sequence[int], responses: Sequence[Sequence[int]]
) -> tuple[list[int], list[int], torch.Tensor, list[int]]:
    """One sequence holding a prompt once and ``n`` responses, with the mask that keeps them apart.

    The sequence is ``prompt[:-1]`` followed, for each response, by
    ``[prompt[-1]] + response[:-1]``; each response's tokens sit at rotary positions
    ``len(prompt) - 1 + j`` and attend to the prompt and to their own response's earlier tokens
    only, so position ``j`` of a response predicts ``response[j]`` exactly as in its own full
    sequence.

    Args:
        prompt: The shared context ids (at least 2).
        responses: The generated ids of each response (each non-empty).

    Returns:
        The ids, their rotary positions, the ``(L, L)`` boolean attention mask (True: attend) and
        the targets in packed order (the responses' tokens, concatenated).
    """
    shared = len(prompt) - 1
    total = shared + sum(len(r) for r in responses)
    ids, position_ids, targets = list(prompt[:-1]), list(range(shared)), []
    allowed = torch.zeros((total, total), dtype=torch.bool)
    allowed[:shared, :shared] = torch.ones((shared, shared), dtype=torch.bool).tril()
    start = shared
    for response in responses:
        n = len(response)
        ids += [int(prompt[-1]), *response[:-1]]
        position_ids += range(shared, shared + n)
        targets += response
        allowed[start : start + n, :shared] = True
        allowed[start : start + n, start : start + n] = torch.ones((n, n), dtype=torch.bool).tril()
        start += n
    return ids, position_ids, allowed, targets


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
        self.scorer = ScoringModule(self.model, float(temperature))
        self.sharded = False
        """Whether FSDP2 shards the model (``distributed.sharding.shard_policy``): the compute
        precision then comes from its ``MixedPrecisionPolicy`` instead of autocast."""
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.pad_id = int(
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )

    @property
    def temperature(self) -> float:
        """The sampling temperature the logprobs and entropies refer to (the scorer's)."""
        return self.scorer.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if value <= 0:
            raise ValueError(f"temperature must be > 0; got {value}")
        self.scorer.temperature = float(value)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context the forward passes run in (``compute_autocast`` at this policy's dtype;
        nothing when FSDP2's mixed precision casts the gathered parameters instead)."""
        if self.sharded:
            return contextlib.nullcontext()
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
        mask = batch.loss_mask.to(self.device)
        rows, cols = mask.nonzero(as_tuple=True)  # column t of the mask predicts token t + 1
        with self.autocast():
            scores = self.scorer(
                input_ids=batch.input_ids.to(self.device),
                attention_mask=batch.attention_mask.to(self.device),
                positions=(rows, cols),
                targets=batch.targets.to(self.device)[rows, cols],
                with_entropy=with_entropy,
            )  # (1 or 2, N)
        chosen = torch.zeros(mask.shape, device=self.device).index_put((rows, cols), scores[0])
        if not with_entropy:
            return chosen, None
        entropy = torch.zeros(mask.shape, device=self.device).index_put((rows, cols), scores[1])
        return chosen, entropy

    def forward_shared_prompt(
        self, prompt: Sequence[int], responses: Sequence[Sequence[int]], with_entropy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Logprobs of ``n`` responses to one prompt, running the prompt once (exact gradients).

        One forward pass over ``pack_responses``: the prompt (less its last token) once, then each
        response behind ``[last prompt token]``, kept apart by the attention mask and placed at its
        own positions, so position ``j`` of a response predicts ``response[j]`` as in its full
        sequence. The backward pass sums the ``n`` responses' gradients into the one prompt pass,
        which gives the same gradient as ``n`` full sequences at a fraction of the cost when prompts
        are long (turn prefixes hold the tool schemas and the whole conversation). No KV cache is
        built, so nothing is repeated per response and whole layers can be recomputed in the
        backward pass (``checkpoint_activations``).

        Args:
            prompt: The shared context ids (at least 2).
            responses: The generated ids of each response (each non-empty).
            with_entropy: Also return the entropy at each response position.

        Returns:
            ``(n, R)`` logprobs, ``(n, R)`` entropies or None, and the ``(n, R)`` mask of real tokens.
        """
        ids, position_ids, allowed, targets = pack_responses(prompt, responses)
        lengths = torch.tensor([len(r) for r in responses])
        rows = torch.repeat_interleave(torch.arange(len(responses)), lengths)
        cols = torch.cat([torch.arange(int(n)) for n in lengths])
        packed = torch.arange(len(prompt) - 1, len(ids), device=self.device)
        with self.autocast():
            scores = self.scorer(
                input_ids=torch.tensor([ids], device=self.device),
                attention_mask=allowed[None, None].to(self.device),
                position_ids=torch.tensor([position_ids], device=self.device),
                positions=(torch.zeros_like(packed), packed),
                targets=torch.tensor(targets, device=self.device),
                with_entropy=with_entropy,
            )  # (1 or 2, N) in packed order: response by response
        shape = (len(responses), int(lengths.max()))
        where = (rows.to(self.device), cols.to(self.device))
        out = torch.zeros(shape, device=self.device).index_put(where, scores[0])
        mask = torch.zeros(shape, device=self.device)
        mask[where] = 1.0
        entropy = None
        if with_entropy:
            entropy = torch.zeros(shape, device=self.device).index_put(where, scores[1])
        return out, entropy, mask

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
        self.scorer = ScoringModule(self.model, self.temperature)

    def checkpoint_activations(self) -> None:
        """Recompute each decoder layer in the backward pass instead of keeping its activations.

        A layer then keeps only its input (the residual stream) from the forward pass and runs
        again, one layer at a time, when the gradient reaches it
        (``torch.distributed._composable.checkpoint``: hooks, no wrapper module, so parameter
        names and state dicts are unchanged, and it composes with FSDP2's ``fully_shard``). The
        scoring passes build no KV cache (``forward_shared_prompt`` packs its responses), so
        running a layer twice changes nothing but time: about one more forward pass.
        """
        from torch.distributed._composable import checkpoint

        for layer in self.model.get_decoder().layers:
            checkpoint(layer)

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
