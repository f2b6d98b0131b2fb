"""The rollout worker actor: owns a generator (vLLM engine or transformers model) and envs, plays episodes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import AutoTokenizer

from ftrl_gym.agents.models import resolve_model
from ftrl_gym.agents.training.config import TrainConfig
from ftrl_gym.agents.training.distributed.versions import UNLOADED, Tagged
from ftrl_gym.agents.training.distributed.weight_group import Layout, WeightGroup, empty_buffers, unpack
from ftrl_gym.agents.training.generation import (
    Completion,
    Generator,
    SamplingSettings,
    TransformersGenerator,
    VLLMGenerator,
    transformers_generator,
    vllm_generator,
)
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.rollout import (
    Episode,
    EpisodeSpec,
    TokenRenderer,
    run_episodes,
    train_env_pool,
)
from ftrl_gym.agents.training.samples import Prefix, Sample, turn_samples


def turn_end_ids(path: str, tokenizer: Any) -> set[int]:
    """``Policy.eos_ids`` without loading the weights: the generation config's eos ids and the
    tokenizer's."""
    from transformers import GenerationConfig

    try:
        ids = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:  # a folder without generation_config.json
        ids = None
    ids = set(ids if isinstance(ids, list) else [ids]) - {None}
    return {int(i) for i in ids} | {int(tokenizer.eos_token_id)}


class TimedGenerator:
    """Wraps a generator and adds up the seconds spent in its ``generate``."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.seconds = 0.0

    def generate(self, *args: Any, **kwargs: Any) -> list[list[Completion]]:
        """``inner.generate(prompts, settings, seeds)``, timed."""
        started = time.perf_counter()
        try:
            return self.inner.generate(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def sync_weights(self, model: torch.nn.Module) -> None:
        """``inner.sync_weights``."""
        self.inner.sync_weights(model)

    def close(self) -> None:
        """Nothing: the worker closes the inner generator."""


class RolloutWorker:
    """Plays episodes and scores responses with its own generator and envs (a Ray actor class).

    The worker starts from ``config.model`` and samples only after the driver has broadcast weights
    (``load_weights``); every result is tagged with the weight version it used. It is stateless
    between requests apart from the weights, so a restarted worker that gets the current weights
    again reproduces any request exactly (sampling is seeded per request).

    Args:
        config: The run's settings as a dict (``TrainConfig.to_dict()``).
        index: The worker's number (for logs).
    """

    def __init__(self, config: dict[str, Any], index: int) -> None:
        self.config = TrainConfig(**config)
        self.index = index
        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)
        self.path = resolve_model(self.config.model)
        tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.renderer = TokenRenderer(tokenizer)
        self.pool = train_env_pool(self.config)
        self.generator = self._build_generator(tokenizer)
        self.version = UNLOADED
        self._lock = threading.Lock()
        self._busy = 0
        self.weight_group: WeightGroup | None = None
        self._layout: Layout = []
        self._buffers: list[torch.Tensor] = []

    def _build_generator(self, tokenizer: Any) -> TransformersGenerator | VLLMGenerator:
        """vLLM: an engine on the model folder (no second copy of the weights in the worker);
        transformers: the model itself."""
        if self.config.backend == "vllm":
            return vllm_generator(self.config, self.path, turn_end_ids(self.path, tokenizer))
        policy = Policy(self.path, tokenizer, dtype=self.config.dtype, device=self.config.device)
        return transformers_generator(self.config, policy)

    def status(self) -> dict[str, Any]:
        """The worker's process id, weight version and number of requests it is running."""
        return {"pid": os.getpid(), "version": self.version, "busy": self._busy}

    def load_weights(self, weights: dict[str, torch.Tensor], version: int) -> int:
        """Load the learner's named tensors as weight ``version``; returns the version."""
        with self._lock:
            self.generator.load_weights(weights)
            self.version = version
        return version

    def join_weight_group(
        self, host: str, port: int, rank: int, size: int, backend: str, layout: Layout
    ) -> None:
        """Join a (new) weight-broadcast group as member ``rank``, with buffers for ``layout``."""
        self.weight_group = None  # leave the previous group first
        self.weight_group = WeightGroup(host, port, rank, size, backend)
        if layout != self._layout or not self._buffers:
            self._layout = layout
            self._buffers = empty_buffers(layout, self.weight_group.device)

    def receive_weights(self, version: int) -> int:
        """Receive learner rank 0's broadcast and load it as weight ``version``."""
        assert self.weight_group is not None, "join_weight_group first"
        self.weight_group.broadcast(self._buffers)
        return self.load_weights(unpack(self._buffers, self._layout), version)

    def play(self, specs: Sequence[EpisodeSpec], settings: SamplingSettings) -> Tagged[Episode]:
        """Play ``specs`` to their ends (``run_episodes``), tagged with the weight version."""
        return self._serve(
            lambda generator: run_episodes(
                specs,
                generator,
                self.renderer,
                self.pool,
                settings,
                self.config.max_context_tokens,
            )
        )

    def respond(self, prefixes: Sequence[Prefix], settings: SamplingSettings) -> Tagged[Sample]:
        """Scheme (a): ``settings.n`` scored responses per prefix (``turn_samples``), tagged."""
        return self._serve(
            lambda generator: turn_samples(prefixes, generator, self.renderer, self.pool, settings)
        )

    def _serve(self, work: Callable[[Generator], list[Any]]) -> Tagged[Any]:
        """Run one request under the lock, timing it and the generator's share of it."""
        with self._lock:
            self._busy += 1
            started = time.perf_counter()
            timed = TimedGenerator(self.generator)
            try:
                items = work(timed)
            finally:
                self._busy -= 1
            busy = time.perf_counter() - started
            return Tagged(self.version, items, busy, timed.seconds)

    def close(self) -> None:
        """Leave the weight group; close the envs and the generator."""
        self.weight_group = None
        self.pool.close()
        self.generator.close()
