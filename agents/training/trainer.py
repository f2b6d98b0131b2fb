"""GRPO and Reinforce++ on env rollouts: sampling, advantages, PPO-clipped updates, checkpoints, metrics."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ftrl_gym.agents.training.checkpoint import CheckpointStore
from ftrl_gym.agents.training.config import ConfigError, TrainConfig
from ftrl_gym.agents.training.generation import (
    Generator,
    SamplingSettings,
    TransformersGenerator,
    VLLMGenerator,
)
from ftrl_gym.agents.training.losses import (
    kl_loss,
    ppo_clipped_policy_loss,
    truncated_importance_weights,
)
from ftrl_gym.agents.training.masked import masked_mean
from ftrl_gym.agents.training.metrics import MetricsLog
from ftrl_gym.agents.training.reporting import open_reporters
from ftrl_gym.agents.training.policy import Policy, make_batch, pad_rows
from ftrl_gym.agents.training.rollout import (
    Episode,
    EpisodeSpec,
    TokenRenderer,
    mean_metrics,
    run_episodes,
    train_env_pool,
)
from ftrl_gym.agents.training.schedule import scheduled_lr
from ftrl_gym.agents.training.samples import (
    Prefix,
    Sample,
    assign_advantages,
    episode_prefixes,
    episode_samples,
    group_signal,
    split_groups,
    turn_samples,
)
from ftrl_gym.agents.training.validation import (
    best_row,
    validation_specs,
    validation_summary,
    write_best,
)

LOGGER = logging.getLogger(__name__)

GROUP_BASELINE_ALGORITHMS = ("grpo", "reinforce_pp_baseline")
"""Algorithms whose advantage is relative to the prompt's group: a flat group gives them nothing."""


@dataclass
class DataState:
    """Where the trainer is in its data; saved in checkpoints so a resumed run skips and repeats nothing.

    Attributes:
        epoch: Current pass over the train tasks.
        position: Tasks of this epoch's order already used.
        prefixes: Scheme (a): sampled prefixes not yet trained on.
        last_metrics: Episode metrics of the latest sampled trajectories (for logging).
    """

    epoch: int = 0
    position: int = 0
    prefixes: list[Prefix] = field(default_factory=list)
    last_metrics: dict[str, float] = field(default_factory=dict)


class RLTrainer:
    """Policy-gradient training on ftrl-gym envs (GRPO, Reinforce++), resumable from ``out_dir``.

    Args:
        config: The settings.
        out_dir: Run folder: ``metrics.jsonl``, ``curves.png``, ``checkpoints/``, ``final/``; with
            ``val_every`` also ``validation.jsonl``, ``best/`` and ``best.json``.
        policy: A ready learner (tests); built from ``config.model`` otherwise.
        progress: Show a tqdm bar.
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path,
        policy: Policy | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        torch.manual_seed(config.seed)
        self._build_learner(policy)
        self.pool = train_env_pool(config)
        self.tasks = [
            (e, i)
            for e in config.env_ids
            for i in range(min(config.train_tasks, self.pool.num_tasks(e)))
        ]
        self.rng = random.Random(config.seed)
        self.step = 0
        self.data = DataState()
        self.checkpoints = CheckpointStore(self.out_dir / "checkpoints")
        self.reporters = open_reporters(config.report_to, self.out_dir, config.to_dict())
        self.log = MetricsLog(self.out_dir / "metrics.jsonl", self.reporters, "train")
        self.validation = MetricsLog(self.out_dir / "validation.jsonl", self.reporters, "validation")
        self.progress = progress
        self._resume()
        self.generator = self._build_generator()

    def _build_learner(self, policy: Policy | None) -> None:
        """The policy, its frozen reference, the optimiser and the renderer (a hook: the Ray driver
        keeps these in learner actors instead)."""
        config = self.config
        if config.learner_sharding != "none":
            raise ConfigError(
                f"learner_sharding={config.learner_sharding} shards the Ray learner ranks: train "
                "with --ray and num_learners >= 2, or set learner_sharding=none in one process"
            )
        self.policy = policy or Policy(config.model, dtype=config.dtype, device=config.device)
        self.policy.temperature = config.temperature  # score the distribution rollouts come from
        self.reference = build_reference(self.policy, config)  # before the adapters: the start
        if config.activation_checkpointing:
            self.policy.checkpoint_activations()
        if config.lora_rank:
            self.policy.add_lora(config.lora_rank, config.lora_alpha, config.lora_targets)
        self.optimizer = build_optimizer(self.policy, config)
        self.renderer = TokenRenderer(self.policy.tokenizer)

    def _build_generator(self) -> Generator:
        eos = self.policy.eos_ids()
        if self.config.backend == "vllm":
            start = (
                self.checkpoints.latest_model()
                or self.policy.path
                or self.policy.save(self.out_dir / "start_model")
            )
            generator: Generator = VLLMGenerator(
                str(start),
                self.config.seed,
                self.config.max_context_tokens,
                self.config.vllm_kv_cache_gib,
                self.config.dtype,
                eos,
            )
            generator.sync_weights(self.policy.model)
            return generator
        return TransformersGenerator(
            self.policy.model,
            eos,
            self.policy.pad_id,
            self.config.micro_batch_size,
            self.policy.compute_dtype,
        )

    def total_steps(self) -> int | None:
        """Steps the run will take, when known in advance."""
        if self.config.max_steps:
            return self.config.max_steps
        if self.config.scheme == "episode":
            return self.config.epochs * math.ceil(len(self.tasks) / self.config.prompts_per_step)
        return None

    def train(
        self, on_step: Callable[[dict[str, Any]], None] | None = None
    ) -> list[dict[str, Any]]:
        """Run steps until ``max_steps`` or the last epoch ends; checkpoint as configured.

        Returns:
            The metrics of every step of the run (earlier runs' steps included after a resume).
        """
        from tqdm import tqdm

        bar = tqdm(
            total=self.total_steps(),
            initial=self.step,
            desc=self.config.algorithm,
            unit="step",
            disable=not self.progress,
        )
        # A resumed run starts at its newest checkpoint; a fresh one (step 0) has none yet.
        checkpointed = self.step if self.step else None
        try:
            if self._validation_due(final=False):
                self.validate()
            while not self._finished():
                metrics = self.train_step()
                bar.update(1)
                postfix = {
                    "reward": f"{metrics['reward']:.3f}",
                    "f1": f"{metrics.get('solve_f1', 0):.3f}",
                }
                if self._validation_due(final=self._finished()):
                    postfix["val_f1"] = f"{self.validate()['solve_f1']:.3f}"
                bar.set_postfix(postfix)
                if on_step:
                    on_step(metrics)
                if self.step % self.config.save_every == 0:
                    self._checkpoint()
                    checkpointed = self.step
            if checkpointed != self.step:
                self._checkpoint()
            self._save_final()
        finally:
            bar.close()
        return self.log.read()

    def _checkpoint(self) -> None:
        """Save a checkpoint and redraw ``curves.png``, so a run stopped later keeps its plot."""
        self.save_checkpoint()
        self.log.plot(self.out_dir / "curves.png", self.validation.read())

    def _save_final(self) -> None:
        self._save_model(self.out_dir / "final")

    def _save_model(self, folder: Path) -> None:
        """Write the current policy as a Hugging Face folder (a hook: Ray's learner rank 0 writes it)."""
        self.policy.save(folder)

    # --- validation -------------------------------------------------------------------------------

    def _validation_due(self, final: bool) -> bool:
        """Whether to validate now: every ``val_every`` steps (step 0 included) and after the last
        step, unless this step's validation is already logged (a resumed run)."""
        every = self.config.val_every
        if not every or not (final or self.step % every == 0):
            return False
        return all(int(row["step"]) != self.step for row in self.validation.read())

    def validate(self) -> dict[str, Any]:
        """Play one greedy episode per validation task with the current policy, log Solve-P/R/F1.

        Validation tasks are train-split tasks after the first ``train_tasks`` (never trained on).
        When this step's Solve-F1 beats every earlier one (step 0, the starting model, included),
        the policy is written to ``best/`` and the step to ``best.json``.

        Returns:
            The logged row (``validation_summary``).
        """
        config = self.config
        specs = validation_specs(
            config.env_ids, self.pool.num_tasks, config.train_tasks, config.val_tasks, config.seed
        )
        greedy = SamplingSettings(1, config.eval_max_new_tokens, 0.0, 1.0, config.seed)
        self._generator_at_current_step()
        row = validation_summary(self.step, self._play(specs, greedy))
        self.validation.append(row)
        best = best_row(self.validation.read())
        if best is not None and int(best["step"]) == self.step:
            self._save_model(self.out_dir / "best")
            write_best(self.out_dir, row)
        return row

    def _finished(self) -> bool:
        if self.config.max_steps and self.step >= self.config.max_steps:
            return True
        return self.data.epoch >= self.config.epochs

    def train_step(self) -> dict[str, Any]:
        """Sample one batch from the envs, update the policy on it, log and return the step's metrics."""
        started = time.perf_counter()
        samples, sampling = self._sample_batch()
        if not samples:
            raise RuntimeError(
                "no episode of this batch fits max_context_tokens with room for max_new_tokens: "
                "raise max_context_tokens or lower max_new_tokens"
            )
        sampled = time.perf_counter()
        lr = self.learning_rate()
        self._set_learning_rate(lr)
        assign_advantages(
            samples, self.config.algorithm, self.config.gamma, self.config.normalize_by_std
        )
        signal = group_signal(samples)
        update = self._update(samples)
        self.step += 1
        self._sync_weights()
        done = time.perf_counter()
        generated = sum(sum(s.loss_mask) for s in samples)
        # tokens_per_s: the generated tokens the update trained on (samples left out by
        # skip_zero_advantage and context tokens do not count), once per PPO epoch.
        metrics = {
            "step": self.step,
            "epoch": self.data.epoch,
            "samples": len(samples),
            "lr": lr,
            **sampling,
            **self.data.last_metrics,
            **update,
            **signal,
            "response_tokens": generated / len(samples),
            "tokens_per_s": update["trained_tokens"]
            * self.config.ppo_epochs
            / max(done - sampled, 1e-9),
            "generated_tokens_per_s": generated / max(sampled - started, 1e-9),
            "sample_s": round(sampled - started, 3),
            "update_s": round(done - sampled, 3),
            **self._extra_metrics(),
        }
        self.log.append(metrics)
        return metrics

    def learning_rate(self) -> float:
        """This step's learning rate (``scheduled_lr`` of the config's warmup and schedule)."""
        config = self.config
        return scheduled_lr(
            self.step,
            config.lr,
            config.lr_warmup_steps,
            config.max_steps,
            config.lr_schedule,
            config.lr_min_ratio,
        )

    def _set_learning_rate(self, lr: float) -> None:
        """Give the optimiser this step's learning rate (a hook: Ray's learners hold theirs)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _sync_weights(self) -> None:
        """Make the generator sample from the updated policy (version ``self.step``)."""
        self.generator.sync_weights(self.policy.model)

    def _generator_at_current_step(self) -> None:
        """Make sure the generator holds this step's weights (in one process it always does; a hook:
        Ray's rollout workers may lag ``max_staleness`` steps, which validation must not)."""

    def _extra_metrics(self) -> dict[str, Any]:
        """More metrics of the step just taken (a hook for subclasses)."""
        return {}

    def _sampling_settings(self, n: int) -> SamplingSettings:
        return SamplingSettings(
            n,
            self.config.max_new_tokens,
            self.config.temperature,
            self.config.top_p,
            self.config.seed,
        )

    # --- data -------------------------------------------------------------------------------------

    def _epoch_order(self) -> list[tuple[str, int]]:
        order = list(self.tasks)
        random.Random(self.config.seed * 1_000_003 + self.data.epoch).shuffle(order)
        return order

    def _next_tasks(self, count: int) -> list[tuple[str, int]]:
        """The next ``count`` tasks of the epoch (fewer at its end); moves to the next epoch when used up."""
        order = self._epoch_order()
        chosen = order[self.data.position : self.data.position + count]
        self.data.position += len(chosen)
        return chosen

    def _advance_epoch(self) -> None:
        self.data.epoch += 1
        self.data.position = 0

    def _episode_specs(self, tasks: list[tuple[str, int]], repeats: int) -> list[EpisodeSpec]:
        base = self.step * 1009 + self.data.epoch * 7919
        return [
            EpisodeSpec(env_id, index, base + r, f"{env_id}/{index}/e{self.data.epoch}s{self.step}")
            for env_id, index in tasks
            for r in range(repeats)
        ]

    def _rollouts(self, specs: list[EpisodeSpec]) -> list[Episode]:
        episodes = self._play(specs, self._sampling_settings(1))
        self.data.last_metrics = mean_metrics(episodes, ("solve_p", "solve_r", "solve_f1"))
        return episodes

    def _play(self, specs: list[EpisodeSpec], settings: SamplingSettings) -> list[Episode]:
        """Play the episodes with this process's generator and envs (a hook: Ray spreads them)."""
        return run_episodes(
            specs,
            self.generator,
            self.renderer,
            self.pool,
            settings,
            self.config.max_context_tokens,
        )

    def _turn_samples(self, batch: list[Prefix]) -> list[Sample]:
        """Scheme (a)'s responses to ``batch``, scored in this process (a hook: Ray spreads them)."""
        settings = self._sampling_settings(self.config.rollouts_per_prompt)
        return turn_samples(batch, self.generator, self.renderer, self.pool, settings)

    def _sample_batch(self) -> tuple[list[Sample], dict[str, float]]:
        """This step's batch: the responses to ``prompts_per_step`` prompts, with dynamic sampling
        refilled with groups whose rewards differ (``refill_with_signal``).

        Returns:
            The samples to train on, and the step's sampling metrics: ``reward`` (the mean score of
            every response sampled this step) and, under dynamic sampling, ``reward_trained``
            and the group counts of ``refill_with_signal``.
        """
        epoch = self.data.epoch
        drawn = self._draw_groups(self.config.prompts_per_step)
        if not self._dynamic_sampling():
            return drawn, {"reward": sum(s.score for s in drawn) / max(len(drawn), 1)}
        return self.refill_with_signal(drawn, epoch)

    def _dynamic_sampling(self) -> bool:
        """Dynamic sampling is on and the algorithm has a group baseline (a flat group teaches it
        nothing); Reinforce++ whitens over the batch and learns from flat groups too."""
        return self.config.dynamic_sampling and self.config.algorithm in GROUP_BASELINE_ALGORITHMS

    def refill_with_signal(
        self, drawn: list[Sample], epoch: int
    ) -> tuple[list[Sample], dict[str, float]]:
        """DAPO's dynamic sampling: drop flat groups, refill with fresh prompts' groups.

        Groups whose responses all earned the same reward are dropped; refill rounds draw the next
        prompts of the epoch (``refill_count`` of them) until ``prompts_per_step`` groups with
        differing rewards are in hand, ``max_resample_rounds`` rounds are spent or the epoch's data
        is used up. The first ``prompts_per_step`` such groups, in drawing order, are the batch;
        if none was found the batch is the first draw (flat: only its KL and entropy terms train).

        Args:
            drawn: The step's first draw of groups.
            epoch: The epoch the step began in (refills stay in it).

        Returns:
            The batch, and ``reward`` (the mean score of every response drawn, first draw and
            refills), ``reward_trained`` (the batch's mean score), ``groups_kept``,
            ``groups_dropped`` (flat groups left out), ``groups_refilled`` (groups drawn by refill
            rounds),
            ``resample_rounds`` and ``groups_surplus`` (groups with differing rewards beyond
            ``prompts_per_step``, left out).
        """
        target = self.config.prompts_per_step
        differ, flat = split_groups(drawn)
        seen, dropped, refilled, rounds = len(differ) + len(flat), len(flat), 0, 0
        scores = [s.score for s in drawn]
        while (
            len(differ) < target
            and rounds < self.config.max_resample_rounds
            and self.data.epoch == epoch
        ):
            fresh = self._draw_groups(refill_count(target - len(differ), seen, len(differ), target))
            if not fresh:
                break
            more, more_flat = split_groups(fresh)
            scores += [s.score for s in fresh]
            differ += more
            rounds += 1
            refilled += len(more) + len(more_flat)
            seen += len(more) + len(more_flat)
            dropped += len(more_flat)
        kept = differ[:target]
        batch = [s for group in kept for s in group] or drawn
        return batch, {
            "reward": sum(scores) / max(len(scores), 1),
            "reward_trained": sum(s.score for s in batch) / max(len(batch), 1),
            "groups_kept": len(kept),
            "groups_dropped": dropped,
            "groups_refilled": refilled,
            "resample_rounds": rounds,
            "groups_surplus": len(differ) - len(kept),
        }

    def _draw_groups(self, count: int) -> list[Sample]:
        """The responses to the epoch's next ``count`` prompts (tasks for scheme ``episode``, turn
        prefixes for ``turn``), scored; fewer at the epoch's end, which moves to the next epoch."""
        if self.config.scheme == "episode":
            tasks = self._next_tasks(count)
            specs = self._episode_specs(tasks, self.config.rollouts_per_prompt)
            samples = (
                episode_samples(self._rollouts(specs), self.config.episode_reward) if tasks else []
            )
            if self.data.position >= len(self.tasks):
                self._advance_epoch()
            return samples
        batch = self._take_prefixes(count)
        return self._turn_samples(batch) if batch else []

    def _take_prefixes(self, count: int) -> list[Prefix]:
        """The next ``count`` turn prefixes, sampling trajectories of the next tasks as needed."""
        while len(self.data.prefixes) < count and self.data.position < len(self.tasks):
            episodes = self._rollouts(
                self._episode_specs(self._next_tasks(self.config.prompts_per_step), 1)
            )
            fresh = episode_prefixes(episodes)
            self.rng.shuffle(fresh)
            self.data.prefixes.extend(fresh)
        batch = self.data.prefixes[:count]
        self.data.prefixes = self.data.prefixes[count:]
        if not self.data.prefixes and self.data.position >= len(self.tasks):
            self._advance_epoch()
        return batch

    # --- update -----------------------------------------------------------------------------------

    def _update(self, samples: list[Sample]) -> dict[str, float]:
        """PPO-style updates: ``ppo_epochs`` passes of mini-batches (whole groups), token-mean loss.

        With ``skip_zero_advantage`` the samples whose advantage is zero everywhere sit out. With
        ``recompute_old_logprobs`` the learner scores the batch first and its logprobs are the old
        policy of the PPO ratio. ``grad_norm`` is the mean over the updates that stepped;
        ``skipped_updates`` counts those dropped for a non-finite gradient.
        """
        if self.config.skip_zero_advantage:
            samples = informative_samples(samples)
        if self.config.recompute_old_logprobs:
            self._recompute_old_logprobs(samples)
        groups: dict[str, list[Sample]] = {}
        for sample in samples:
            groups.setdefault(sample.group, []).append(sample)
        group_lists = list(groups.values())
        totals: dict[str, float] = {}
        updates = skipped = 0
        norms: list[float] = []
        for _ in range(self.config.ppo_epochs):
            self.rng.shuffle(group_lists)
            for start in range(0, len(group_lists), self.config.mini_batch_size):
                mini = [
                    s for g in group_lists[start : start + self.config.mini_batch_size] for s in g
                ]
                stats = self._optimizer_step(mini)
                if stats["stepped"]:
                    norms.append(stats["grad_norm"])
                else:
                    skipped += 1
                for key in LOSS_STATS:
                    totals[key] = totals.get(key, 0.0) + stats[key]
                updates += 1
        means = {key: value / updates for key, value in totals.items()} if updates else {}
        return {
            **dict.fromkeys((*LOSS_STATS, "grad_norm"), float("nan")),
            **means,
            **({"grad_norm": sum(norms) / len(norms)} if norms else {}),
            "trained_samples": len(samples),
            "trained_tokens": sum(sum(s.loss_mask) for s in samples),
            "optimizer_updates": updates,
            "skipped_updates": skipped,
        }

    def _recompute_old_logprobs(self, samples: list[Sample]) -> None:
        """Score the batch with the learner before the update (a hook: Ray's learners do it)."""
        config = self.config
        recompute_old_logprobs(
            self.policy, samples, config.micro_batch_size, config.micro_batch_tokens
        )

    def _optimizer_step(self, mini: list[Sample]) -> dict[str, float]:
        """One optimiser update over a mini-batch, accumulated over micro-batches by token share.

        Returns:
            The loss statistics, ``grad_norm`` and ``stepped`` (1.0, or 0.0 when the gradient was
            not finite and the update was skipped).
        """
        self.optimizer.zero_grad(set_to_none=True)
        stats = accumulate_gradients(
            self.micro_batch_loss,
            micro_batches(mini, self.config.micro_batch_size, self.config.micro_batch_tokens),
            generated_tokens(mini),
        )
        norm, stepped = clip_and_step(self.policy, self.optimizer, self.config.max_grad_norm)
        return {**stats, "grad_norm": norm, "stepped": float(stepped)}

    def micro_batch_loss(self, micro: list[Sample]) -> dict[str, Any]:
        """The loss of a micro-batch (``micro_batch_loss`` with this trainer's models and config)."""
        return micro_batch_loss(self.policy, self.reference, self.config, micro)

    # --- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write weights (HF format), optimiser, RNG states, step counter and data position."""
        state = {
            **self._data_state(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.random.get_rng_state(),
        }
        return self.checkpoints.save(self.step, self.policy, state)

    def _data_state(self) -> dict[str, Any]:
        """The checkpointed state that is not the learner's: step, data position, Python RNG, config."""
        return {
            "step": self.step,
            "data": self.data,
            "python_rng": self.rng.getstate(),
            "config": self.config.to_dict(),
        }

    def _restore_data_state(self, state: dict[str, Any]) -> None:
        self.rng.setstate(state["python_rng"])
        self.step = int(state["step"])
        self.data = state["data"]
        self.log.truncate(self.step)
        self.validation.truncate(self.step)

    def _resume(self) -> None:
        found = self.checkpoints.load_latest()
        if found is None:
            return
        model_dir, state = found
        restore_learner(self.policy, self.optimizer, model_dir, state)
        self._restore_data_state(state)

    def close(self) -> None:
        """Close the envs, the generation back end and the metric reporters."""
        self.pool.close()
        self.generator.close()
        for reporter in self.reporters:
            reporter.close()
        self.reporters = []


@dataclass(frozen=True)
class ScoredBatch:
    """A micro-batch scored by a policy, with its per-token values aligned to the predictions.

    Attributes:
        logprobs: ``(B, W)`` logprobs of the generated tokens (0 elsewhere).
        entropy: ``(B, W)`` entropies, or None.
        mask: ``(B, W)`` 1.0 where a generated token is predicted.
        offset: Column ``j`` predicts token ``offset + j`` of each sample (the shared prompt's
            length, or 1 for full sequences).
    """

    logprobs: torch.Tensor
    entropy: torch.Tensor | None
    mask: torch.Tensor
    offset: int

    def aligned(self, rows: list[list[float]]) -> torch.Tensor:
        """``(B, W)`` per-token values (one list per sample, indexed like its ``token_ids``)."""
        width = self.mask.shape[1]
        return pad_rows([row[self.offset :] for row in rows], width).to(self.mask.device)


def score_micro_batch(policy: Policy, micro: list[Sample], with_entropy: bool) -> ScoredBatch:
    """Run ``policy`` over a micro-batch: logprobs (and entropies) of its generated tokens.

    Responses to one turn prefix (scheme a) share their prompt, which then runs once
    (``Policy.forward_shared_prompt``, same values and gradients as full sequences).
    """
    prompt_length = shared_prompt_length(micro)
    if prompt_length:
        prompt = micro[0].token_ids[:prompt_length]
        responses = [s.token_ids[prompt_length:] for s in micro]
        logprobs, entropy, mask = policy.forward_shared_prompt(prompt, responses, with_entropy)
        return ScoredBatch(logprobs, entropy, mask, prompt_length)
    batch = make_batch([s.token_ids for s in micro], [s.loss_mask for s in micro], policy.pad_id)
    logprobs, entropy = policy.forward(batch, with_entropy=with_entropy)
    return ScoredBatch(logprobs, entropy, batch.loss_mask.to(logprobs.device), 1)


def micro_batch_loss(
    policy: Policy, reference: Policy | None, config: TrainConfig, micro: list[Sample]
) -> dict[str, Any]:
    """A micro-batch's loss: PPO clipped policy loss + ``kl_coef`` KL - ``entropy_coef`` entropy.

    The policy loss is dual-clipped (``config.dual_clip``); with ``config.tis_cap`` and recomputed
    old logprobs each token's term is weighted by its truncated importance weight.
    """
    scored = score_micro_batch(policy, micro, True)
    logprobs, mask = scored.logprobs, scored.mask
    old = scored.aligned([s.logprobs for s in micro])
    advantages = scored.aligned([s.advantages for s in micro])
    weights = None
    if config.tis_cap and all(s.rollout_logprobs for s in micro):
        rollout = scored.aligned([s.rollout_logprobs for s in micro])
        weights = truncated_importance_weights(old, rollout, config.tis_cap)
    clipped = ppo_clipped_policy_loss(
        logprobs,
        old,
        advantages,
        mask,
        config.clip_low,
        config.clip_high,
        config.dual_clip,
        weights,
    )
    kl = torch.zeros((), device=logprobs.device)
    if reference is not None:
        with torch.no_grad():
            ref_logprobs = score_micro_batch(reference, micro, False).logprobs
        kl = kl_loss(logprobs, ref_logprobs, mask)
    entropy = scored.entropy
    mean_entropy = (
        masked_mean(entropy, mask) if entropy is not None else torch.zeros((), device=mask.device)
    )
    loss = clipped.loss + config.kl_coef * kl - config.entropy_coef * mean_entropy
    return {
        "loss": loss,
        "policy_loss": clipped.loss.detach(),
        "kl": kl.detach(),
        "entropy": mean_entropy.detach(),
        "clip_fraction": clipped.clip_fraction,
        "dual_clip_fraction": clipped.dual_clip_fraction,
        "approx_kl": clipped.approx_kl,
    }


def recompute_old_logprobs(
    policy: Policy, samples: list[Sample], micro_batch_size: int, max_tokens: int = 0
) -> None:
    """Replace each sample's old logprobs by the learner's own, keeping the generator's aside.

    The PPO ratio then starts at exactly 1 whatever precision the generator sampled in; the
    generator's logprobs move to ``rollout_logprobs`` for the truncated importance weight
    (``config.tis_cap``).

    Args:
        policy: The learner before this batch's update.
        samples: The batch (changed in place).
        micro_batch_size: Samples per forward pass.
        max_tokens: Token budget per forward pass (``micro_batches``; 0: by ``micro_batch_size``).
    """
    with torch.no_grad():
        for micro in micro_batches(samples, micro_batch_size, max_tokens):
            scored = score_micro_batch(policy, micro, False)
            for row, sample in enumerate(micro):
                values = scored.logprobs[row].tolist()
                recomputed = list(sample.logprobs)
                for position in range(scored.offset, len(sample.token_ids)):
                    if sample.loss_mask[position]:
                        recomputed[position] = values[position - scored.offset]
                sample.rollout_logprobs = list(sample.logprobs)
                sample.logprobs = recomputed


def build_reference(policy: Policy, config: TrainConfig) -> Policy | None:
    """The frozen copy of the starting policy that the KL term needs (None when ``kl_coef`` is 0)."""
    return policy.frozen_copy() if config.kl_coef > 0 else None


def build_optimizer(policy: Policy, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the policy's trainable parameters (all, or the LoRA adapters) with the configured
    learning rate and weight decay."""
    trainable = [p for p in policy.model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)


LOSS_STATS = (
    "loss",
    "policy_loss",
    "kl",
    "entropy",
    "clip_fraction",
    "dual_clip_fraction",
    "approx_kl",
)
"""The loss terms ``accumulate_gradients`` reports, each a token-share-weighted mean."""


def generated_tokens(samples: list[Sample]) -> int:
    """Generated tokens (the loss-mask total) of ``samples``, at least 1."""
    return sum(sum(s.loss_mask) for s in samples) or 1


def accumulate_gradients(
    loss_fn: Callable[[list[Sample]], dict[str, Any]],
    micro: list[list[Sample]],
    total_tokens: int,
) -> dict[str, float]:
    """Backward every micro-batch's loss weighted by its share of ``total_tokens``; sum the stats.

    With ``total_tokens`` the whole mini-batch's count, data-parallel ranks that each take some of
    the micro-batches sum (all-reduce) to exactly the single-process gradient and stats.
    """
    stats = dict.fromkeys(LOSS_STATS, 0.0)
    for batch in micro:
        share = generated_tokens(batch) / total_tokens
        terms = loss_fn(batch)
        (terms["loss"] * share).backward()
        for key in stats:
            stats[key] += float(torch.as_tensor(terms[key]).detach()) * share
    return stats


def clip_and_step(
    policy: Policy, optimizer: torch.optim.Optimizer, max_grad_norm: float
) -> tuple[float, bool]:
    """Clip the gradient norm (0: no clipping) and take the optimiser step, unless it is not finite.

    A NaN or infinite gradient (an overflow in low precision, a corrupt sample) would write NaN
    into every weight and the AdamW moments for good: its gradients are dropped instead, the
    optimiser does not step, and the skip is logged (the trainer counts ``skipped_updates``).

    Returns:
        The gradient norm before clipping, and whether the optimiser stepped.
    """
    norm = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), max_grad_norm or float("inf"))
    if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor norm over the ranks' shards
        norm = norm.full_tensor()
    if not torch.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        LOGGER.warning("skipped an optimiser update: the gradient norm is %s", float(norm))
        return float(norm), False
    optimizer.step()
    return float(norm), True


def restore_learner(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    model_dir: Path,
    state: dict[str, Any],
) -> None:
    """Load a checkpoint's (float32 master) weights or LoRA adapters, optimiser state and torch RNG
    into a learner."""
    if (model_dir / "adapter_config.json").is_file():
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        adapters = load_file(model_dir / "adapter_model.safetensors", device=str(policy.device))
        set_peft_model_state_dict(policy.model, adapters)
    else:
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        policy.model.load_state_dict(loaded.state_dict())
    optimizer.load_state_dict(state["optimizer"])
    torch.random.set_rng_state(state["torch_rng"])


def refill_count(missing: int, seen: int, with_signal: int, most: int) -> int:
    """How many prompts a dynamic-sampling refill round draws.

    The missing groups over the share of the step's groups so far whose rewards differed, so one
    round is expected to suffice; ``most`` when none differed yet.

    Args:
        missing: Groups with differing rewards still wanted.
        seen: Groups drawn so far this step.
        with_signal: Of those, groups whose rewards differed.
        most: The cap (``prompts_per_step``).

    Returns:
        ``min(most, ceil(missing * seen / with_signal))``, or ``most`` when ``with_signal`` is 0.
    """
    if with_signal == 0:
        return most
    return min(most, math.ceil(missing * seen / with_signal))


def informative_samples(samples: list[Sample]) -> list[Sample]:
    """The samples with a non-zero advantage at some token (the others add no policy gradient)."""
    return [s for s in samples if any(a != 0.0 for a in s.advantages)]


def micro_batches(mini: list[Sample], size: int, max_tokens: int = 0) -> list[list[Sample]]:
    """Split a mini-batch into micro-batches, never across groups.

    Without ``max_tokens``, at most ``size`` samples each. With it (verl's
    ``ppo_max_token_len_per_gpu``), each micro-batch takes the group's next samples while the
    tokens its forward pass runs (``micro_batch_tokens``) stay within ``max_tokens``, whatever their
    number; a sample over the budget alone goes alone. Gradients accumulate by token share, so the
    update is the same for any split; only the activation memory and the speed change.

    Args:
        mini: The mini-batch.
        size: Most samples per micro-batch (used when ``max_tokens`` is 0).
        max_tokens: Token budget per micro-batch (0: split by ``size``).

    Returns:
        The micro-batches, group by group, in order.
    """
    groups: dict[str, list[Sample]] = {}
    for sample in mini:
        groups.setdefault(sample.group, []).append(sample)
    if not max_tokens:
        return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
    out: list[list[Sample]] = []
    for group in groups.values():
        current: list[Sample] = []
        for sample in group:
            if current and micro_batch_tokens([*current, sample]) > max_tokens:
                out.append(current)
                current = []
            current.append(sample)
        out.append(current)
    return out


def micro_batch_tokens(samples: list[Sample]) -> int:
    """Token positions one forward pass over ``samples`` runs: a shared prompt once plus each
    response (``score_micro_batch``'s shared-prompt path), else every row padded to the longest."""
    prompt = shared_prompt_length(samples)
    if prompt:
        return prompt + sum(len(s.token_ids) - prompt for s in samples)
    return len(samples) * max(len(s.token_ids) for s in samples)


def shared_prompt_length(samples: list[Sample]) -> int:
    """Length of the prompt all samples share when each is that prompt plus generated ids, else 0."""
    first = samples[0]
    length = first.loss_mask.index(1) if 1 in first.loss_mask else 0
    if length < 2:
        return 0
    prompt = first.token_ids[:length]
    for sample in samples:
        if sample.token_ids[:length] != prompt or sample.loss_mask[:length].count(1):
            return 0
        if sample.loss_mask[length:].count(0) or len(sample.token_ids) == length:
            return 0
    return length


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON."""
    path.write_text(json.dumps(data, indent=2, default=str))
