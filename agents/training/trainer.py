"""GRPO and Reinforce++ on env rollouts: the schedule (data, advantages, updates, metrics, checkpoints).

Where the work runs is a ``backend.TrainingBackend``: ``LocalBackend`` in this process or
``RayBackend`` on a Ray cluster.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ftrl_gym.agents.training.backend import TrainingBackend
from ftrl_gym.agents.training.config import TrainConfig
from ftrl_gym.agents.training.generation import SamplingSettings
from ftrl_gym.agents.training.metrics import MetricsLog
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.reporting import open_reporters
from ftrl_gym.agents.training.rollout import (
    Episode,
    EpisodeSpec,
    mean_metrics,
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
)
from ftrl_gym.agents.training.update import LOSS_STATS
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

    The trainer owns the schedule: task order, episode specs, turn prefixes, dynamic sampling,
    advantages, mini-batch shuffling, the learning-rate schedule, metrics, validation and
    checkpoint timing. Its ``backend`` does the work: generation, optimiser steps, weight sync,
    save and load.

    Args:
        config: The settings.
        out_dir: Run folder: ``metrics.jsonl``, ``curves.png``, ``checkpoints/``, ``final/``; with
            ``val_every`` also ``validation.jsonl``, ``best/`` and ``best.json``.
        policy: A ready learner policy for the default ``LocalBackend`` (tests); built from
            ``config.model`` otherwise.
        progress: Show a tqdm bar.
        backend: Where the work runs (e.g. ``RayBackend``); ``LocalBackend`` in this process when
            None. The trainer closes it.

    Raises:
        ValueError: Both ``policy`` and ``backend`` were given.
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path,
        policy: Policy | None = None,
        progress: bool = True,
        backend: TrainingBackend | None = None,
    ) -> None:
        if policy is not None and backend is not None:
            raise ValueError("policy= builds the LocalBackend: pass it to your backend instead")
        self.config = config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.pool = train_env_pool(config)
        self.backend: TrainingBackend
        try:
            if backend is None:
                from ftrl_gym.agents.training.local_backend import LocalBackend

                backend = LocalBackend(config, self.out_dir, self.pool, policy)
            self.backend = backend
            self.tasks = [
                (e, i)
                for e in config.env_ids
                for i in range(min(config.train_tasks, self.pool.num_tasks(e)))
            ]
            self.rng = random.Random(config.seed)
            self.step = 0
            self.data = DataState()
            self.reporters = open_reporters(config.report_to, self.out_dir, config.to_dict())
            self.log = MetricsLog(self.out_dir / "metrics.jsonl", self.reporters, "train")
            self.validation = MetricsLog(
                self.out_dir / "validation.jsonl", self.reporters, "validation"
            )
            self.progress = progress
            state = self.backend.load_checkpoint()
            if state is not None:
                self._restore_data_state(state)
            self.backend.start_generation(self.step)
        except BaseException:
            self.close()
            raise

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
        self.backend.save_model(self.out_dir / "final")

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
        self.backend.generator_at(self.step)
        row = validation_summary(self.step, self.backend.play(specs, greedy, self.step))
        self.validation.append(row)
        best = best_row(self.validation.read())
        if best is not None and int(best["step"]) == self.step:
            self.backend.save_model(self.out_dir / "best")
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
        self.backend.set_learning_rate(lr)
        assign_advantages(
            samples, self.config.algorithm, self.config.gamma, self.config.normalize_by_std
        )
        signal = group_signal(samples)
        update = self._update(samples)
        self.step += 1
        self.backend.sync_weights(self.step)
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
            **self.backend.extra_metrics(),
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
        episodes = self.backend.play(specs, self._sampling_settings(1), self.step)
        self.data.last_metrics = mean_metrics(episodes, ("solve_p", "solve_r", "solve_f1"))
        return episodes

    def _turn_samples(self, batch: list[Prefix]) -> list[Sample]:
        """Scheme (a)'s ``rollouts_per_prompt`` scored responses to each prefix of ``batch``."""
        settings = self._sampling_settings(self.config.rollouts_per_prompt)
        return self.backend.respond(batch, settings, self.step)

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
            self.backend.recompute_old_logprobs(samples)
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
                stats = self.backend.optimizer_step(mini)
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

    # --- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Have the backend write weights, optimiser and torch RNG with ``data_state``."""
        return self.backend.save_checkpoint(self.step, self.data_state())

    def data_state(self) -> dict[str, Any]:
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

    def close(self) -> None:
        """Close the backend, the envs and the metric reporters (each once)."""
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()
        if getattr(self, "pool", None) is not None:
            self.pool.close()
            self.pool = None  # type: ignore[assignment]
        for reporter in getattr(self, "reporters", []):
            reporter.close()
        self.reporters = []


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
