"""``LocalBackend``: one learner and one generator (vLLM or transformers) in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftrl_gym.agents.training.config import ConfigError, TrainConfig
from ftrl_gym.agents.training.generation import (
    Generator,
    SamplingSettings,
    transformers_generator,
    vllm_generator,
)
from ftrl_gym.agents.training.learner import Learner
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.rollout import Episode, EpisodeSpec, TokenRenderer, run_episodes
from ftrl_gym.agents.training.samples import Prefix, Sample, turn_samples
from ftrl_gym.agents.training.update import generated_tokens, micro_batches
from ftrl_gym.envs.pool import EnvPool


class LocalBackend:
    """``RLTrainer``'s work in one process: a ``Learner`` of world size 1, a generator, the envs.

    Args:
        config: The settings.
        out_dir: Run folder (checkpoints under ``out_dir/checkpoints``; with vLLM and no model
            folder to start from, the start weights under ``out_dir/start_model``).
        pool: The envs the episodes run in (the trainer's).
        policy: A ready learner policy (tests); built from ``config.model`` otherwise.

    Raises:
        ConfigError: ``learner_sharding`` is set (it shards Ray learner ranks).
    """

    def __init__(
        self, config: TrainConfig, out_dir: Path, pool: EnvPool, policy: Policy | None = None
    ) -> None:
        if config.learner_sharding != "none":
            raise ConfigError(
                f"learner_sharding={config.learner_sharding} shards the Ray learner ranks: train "
                "with --ray and num_learners >= 2, or set learner_sharding=none in one process"
            )
        self.config = config
        self.out_dir = Path(out_dir)
        self.pool = pool
        self.learner = Learner(config, 0, 1, self.out_dir, policy)
        self.renderer = TokenRenderer(self.learner.policy.tokenizer)
        self.generator: Generator | None = None

    @property
    def policy(self) -> Policy:
        """The learner's policy."""
        return self.learner.policy

    def load_checkpoint(self) -> dict[str, Any] | None:
        """Load the newest checkpoint into the learner (``Learner.load_checkpoint``)."""
        return self.learner.load_checkpoint()

    def start_generation(self, step: int) -> None:
        """Start the generator: vLLM from the newest checkpoint's (or the start) weights, then
        synced to the learner's; or transformers generation on the learner's own model."""
        policy = self.policy
        if self.config.backend != "vllm":
            self.generator = transformers_generator(self.config, policy)
            return
        start = (
            self.learner.checkpoints.latest_model()
            or policy.path
            or policy.save(self.out_dir / "start_model")
        )
        self.generator = vllm_generator(self.config, str(start), policy.eos_ids())
        self.generator.sync_weights(policy.model)

    def _generator(self) -> Generator:
        if self.generator is None:
            raise RuntimeError("start_generation first")
        return self.generator

    def play(self, specs: list[EpisodeSpec], settings: SamplingSettings, step: int) -> list[Episode]:
        """Play the episodes with this process's generator and envs."""
        return run_episodes(
            specs,
            self._generator(),
            self.renderer,
            self.pool,
            settings,
            self.config.max_context_tokens,
        )

    def respond(self, prefixes: list[Prefix], settings: SamplingSettings, step: int) -> list[Sample]:
        """Scheme (a)'s responses to ``prefixes``, scored in this process."""
        return turn_samples(prefixes, self._generator(), self.renderer, self.pool, settings)

    def set_learning_rate(self, lr: float) -> None:
        """Give the optimiser this step's learning rate."""
        self.learner.set_learning_rate(lr)

    def recompute_old_logprobs(self, samples: list[Sample]) -> None:
        """Score the batch with the learner before the update (in place)."""
        self.learner.recompute_old_logprobs(samples)

    def optimizer_step(self, mini: list[Sample]) -> dict[str, float]:
        """One update over the mini-batch's micro-batches, accumulated by token share."""
        config = self.config
        micro = micro_batches(mini, config.micro_batch_size, config.micro_batch_tokens)
        return self.learner.optimizer_step(micro, generated_tokens(mini))

    def sync_weights(self, step: int) -> None:
        """Make the generator sample from the updated policy."""
        self._generator().sync_weights(self.policy.model)

    def generator_at(self, step: int) -> None:
        """In one process the generator always holds the learner's current weights."""

    def save_checkpoint(self, step: int, data_state: dict[str, Any]) -> Path:
        """Write weights (HF format), optimiser, torch RNG and the trainer's state."""
        return Path(self.learner.save_checkpoint(step, data_state))

    def save_model(self, folder: Path) -> None:
        """Write the current policy as a Hugging Face folder."""
        self.learner.save_model(str(folder))

    def extra_metrics(self) -> dict[str, Any]:
        """No metrics beyond the trainer's."""
        return {}

    def close(self) -> None:
        """Close the generation back end (the envs are the trainer's)."""
        if self.generator is not None:
            self.generator.close()
            self.generator = None
