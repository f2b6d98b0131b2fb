"""Training samples from env episodes, two schemes: per-turn prefixes (the paper's) and whole episodes.

(a) ``turn``: sampled trajectories are cut into per-turn prefixes; each prefix (a prompt) gets ``n``
fresh responses, each scored by the env's reward for that turn. One sample = prefix + one response.
(b) ``episode``: ``n`` online episodes per task; one sample = the whole episode, every assistant turn
in the loss, each turn's tokens weighted by its turn-level advantage, or (``outcome``) every token by
the advantage of the episode's one outcome score.

Either way the ids, loss mask and logprobs come from the rollout unchanged (token in, token out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ftrl_gym.agents.training.advantages import (
    group_indices,
    grpo_advantages,
    reinforce_pp_advantages,
    reinforce_pp_baseline_advantages,
    scatter_scores,
    turn_level_advantages,
)
from ftrl_gym.agents.training.config import EPISODE_REWARDS
from ftrl_gym.agents.training.generation import Generator, SamplingSettings, request_seed
from ftrl_gym.agents.training.policy import pad_rows
from ftrl_gym.agents.training.rollout import EnvPool, Episode, TokenRenderer, replay_and_score


@dataclass
class Sample:
    """One training sequence.

    Attributes:
        token_ids: Context and response ids, exactly as generated.
        loss_mask: 1 on ids the policy generated.
        logprobs: The generator's logprob of each generated id (0.0 elsewhere).
        group: Samples answering the same prompt share a group (GRPO's baseline).
        score: The sample's scalar reward (turn reward, episode return, or episode outcome).
        turn_rewards: Scheme (b) with turn rewards: the env reward of each assistant turn (empty
            under the outcome reward, whose advantage comes from ``score`` alone).
        turn_of_token: Scheme (b): the turn each id belongs to (-1 for context).
        advantages: Per-token advantages, filled in by ``assign_advantages``.
        rollout_logprobs: The generator's logprobs, kept here when the learner recomputes
            ``logprobs`` (``recompute_old_logprobs``); empty otherwise.
    """

    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    group: str
    score: float
    turn_rewards: list[float] = field(default_factory=list)
    turn_of_token: list[int] = field(default_factory=list)
    advantages: list[float] = field(default_factory=list)
    rollout_logprobs: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Prefix:
    """Scheme (a)'s prompt: an episode cut before one of its assistant turns."""

    episode: Episode
    turn: int

    @property
    def group(self) -> str:
        """The prefix's id: task and turn."""
        return f"{self.episode.group}/turn{self.turn}"


def episode_prefixes(episodes: Sequence[Episode]) -> list[Prefix]:
    """Every assistant turn of every episode, as a prefix to answer again."""
    return [Prefix(e, k) for e in episodes for k in range(len(e.turns))]


def turn_samples(
    prefixes: Sequence[Prefix],
    generator: Generator,
    renderer: TokenRenderer,
    pool: EnvPool,
    settings: SamplingSettings,
) -> list[Sample]:
    """Scheme (a): ``settings.n`` responses per prefix, each scored by the env's turn reward.

    Args:
        prefixes: The prompts (each carries the exact context ids of its turn).
        generator: Samples responses from the current policy.
        renderer: Decodes responses to text for the env.
        pool: Envs to replay and score in.
        settings: Sampling settings (``n`` responses per prefix, seeded per prefix).

    Returns:
        ``len(prefixes) * n`` samples, grouped by prefix.
    """
    prompts = [p.episode.turns[p.turn].prompt_ids for p in prefixes]
    seeds = [request_seed(settings.seed, p.group, p.episode.seed) for p in prefixes]
    responses = generator.generate(prompts, settings, seeds)
    samples = []
    for prefix, prompt, group in zip(prefixes, prompts, responses):
        env = pool.get(prefix.episode.env_id, 1)[0]
        rewards = replay_and_score(env, prefix.episode, prefix.turn, group, renderer)
        for completion, reward in zip(group, rewards):
            samples.append(
                Sample(
                    token_ids=list(prompt) + completion.token_ids,
                    loss_mask=[0] * len(prompt) + [1] * len(completion.token_ids),
                    logprobs=[0.0] * len(prompt) + completion.logprobs,
                    group=prefix.group,
                    score=reward,
                )
            )
    return samples


def outcome_score(turn_rewards: Sequence[float], solve_f1: float) -> float:
    """An episode's outcome: its Solve-F1 plus the format penalties its turns drew.

    Every call counts in Solve-F1 ``2S / (C + T)``, so a failed call lowers the outcome, where its turn
    reward is 0. A malformed (-0.3) or empty (-0.5) turn parses no call and leaves Solve-F1 as it is;
    its penalty is kept so the outcome still teaches the call format.

    Args:
        turn_rewards: The env reward of each assistant turn (SPEC 3; only penalties are negative).
        solve_f1: The episode's Solve-F1 at its end (``info["metrics"]["solve_f1"]``).

    Returns:
        ``solve_f1 + sum(r for r in turn_rewards if r < 0)``.
    """
    return float(solve_f1) + sum(r for r in turn_rewards if r < 0)


def episode_samples(episodes: Sequence[Episode], reward: str = "turn") -> list[Sample]:
    """Scheme (b): each episode is one sample.

    Args:
        episodes: Finished episodes.
        reward: ``turn``: the sample keeps each turn's env reward (turn-level advantages) and scores
            their sum; ``outcome``: the sample scores ``outcome_score`` and keeps no turn rewards, so
            its advantage comes from that one score, at every generated token.

    Returns:
        One sample per episode, in order.
    """
    if reward not in EPISODE_REWARDS:
        raise ValueError(f"unknown episode reward {reward!r}: use {' or '.join(EPISODE_REWARDS)}")
    samples = []
    for e in episodes:
        rewards = [t.reward for t in e.turns]
        if reward == "outcome":
            score, kept = outcome_score(rewards, float(e.metrics.get("solve_f1", 0.0))), []
        else:
            score, kept = float(sum(rewards)), rewards
        samples.append(
            Sample(
                token_ids=list(e.token_ids),
                loss_mask=list(e.loss_mask),
                logprobs=list(e.logprobs),
                group=e.group,
                score=score,
                turn_rewards=kept,
                turn_of_token=list(e.turn_of_token),
            )
        )
    return samples


def assign_advantages(
    samples: Sequence[Sample], algorithm: str, gamma: float = 1.0, normalize_by_std: bool = True
) -> None:
    """Fill each sample's per-token ``advantages`` (zero off the loss mask).

    Scheme (b) samples (with ``turn_rewards``) under GRPO take turn-level advantages (a baseline per
    task and turn index, ``turn_level_advantages``); under
    Reinforce++ each turn's reward sits on its last token and returns run back over the episode's
    generated tokens. Scheme (a) samples use the sequence score.

    Args:
        samples: The batch.
        algorithm: ``grpo``, ``reinforce_pp`` or ``reinforce_pp_baseline``.
        gamma: Discount (per token for Reinforce++, per turn for turn-level GRPO).
        normalize_by_std: GRPO's division by the group std.
    """
    width = max(len(s.token_ids) for s in samples)
    mask = pad_rows([s.loss_mask for s in samples], width)  # (B, L)
    groups = [s.group for s in samples]
    scores = torch.tensor([s.score for s in samples], dtype=torch.float32)
    # An episode with no turns (its prompt alone filled the context) has no turn rewards and no
    # generated tokens: it must not switch the whole batch to the sequence-score estimator.
    multi_turn = any(s.turn_rewards for s in samples)
    if algorithm == "grpo" and multi_turn:
        per_turn = turn_level_advantages(
            [s.turn_rewards for s in samples], groups, gamma, normalize_by_std
        )
        rows = [
            [per_turn[i][t] if t >= 0 else 0.0 for t in s.turn_of_token]
            for i, s in enumerate(samples)
        ]
        advantages = pad_rows(rows, width) * mask
    elif algorithm == "grpo":
        advantages = grpo_advantages(scores, groups, normalize_by_std)[:, None] * mask
    elif algorithm == "reinforce_pp":
        token_rewards = (
            _turn_end_rewards(samples, width) if multi_turn else scatter_scores(scores, mask)
        )
        advantages = reinforce_pp_advantages(token_rewards, mask, gamma)
    elif algorithm == "reinforce_pp_baseline":
        advantages = reinforce_pp_baseline_advantages(scores, groups, mask)
    else:
        raise ValueError(
            f"unknown algorithm {algorithm!r}: use grpo, reinforce_pp or reinforce_pp_baseline"
        )
    for sample, row in zip(samples, advantages.tolist()):
        sample.advantages = row[: len(sample.token_ids)]


def group_signal(samples: Sequence[Sample]) -> dict[str, float]:
    """Where a batch's learning signal comes from, group by group (read after ``assign_advantages``).

    A group whose scores all agree teaches nothing (``groups_flat``). One with a spread either has a
    response that earned reward (``groups_rewarded``: some score above 0) or differs only in
    penalties, such as a malformed call's -0.3 against a harmless 0 (``groups_penalty_only``).
    ``penalty_only_share`` is the part of the batch's advantage mass (the sum of ``|advantage|`` over
    generated tokens, which is what the token-mean loss weighs) that penalty-only groups carry: near 1,
    the update mostly teaches the policy to avoid penalties, not to solve.

    Args:
        samples: The batch, with ``advantages`` filled in.

    Returns:
        ``groups_rewarded``, ``groups_penalty_only``, ``groups_flat`` (counts) and
        ``penalty_only_share`` (0.0 when the batch has no advantage mass).
    """
    counts = {"groups_rewarded": 0, "groups_penalty_only": 0, "groups_flat": 0}
    total_mass = penalty_mass = 0.0
    for members in group_indices([s.group for s in samples]):
        scores = [samples[i].score for i in members]
        mass = sum(abs(a) for i in members for a in samples[i].advantages)
        total_mass += mass
        if max(scores) == min(scores):
            counts["groups_flat"] += 1
        elif max(scores) > 0:
            counts["groups_rewarded"] += 1
        else:
            counts["groups_penalty_only"] += 1
            penalty_mass += mass
    share = penalty_mass / total_mass if total_mass > 0 else 0.0
    return {**counts, "penalty_only_share": share}


def group_rewards_differ(members: Sequence[Sample]) -> bool:
    """Whether a group's responses earned different rewards: scores, or (scheme ``episode``) turn
    rewards. A group where they all agree has a zero advantage at every token under a group baseline
    (GRPO, Reinforce++ with a baseline), so it teaches nothing."""
    first = (members[0].score, tuple(members[0].turn_rewards))
    return any((s.score, tuple(s.turn_rewards)) != first for s in members)


def split_groups(samples: Sequence[Sample]) -> tuple[list[list[Sample]], list[list[Sample]]]:
    """A batch's groups in order of first appearance: those whose rewards differ, and the flat."""
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.group, []).append(sample)
    differ = [g for g in groups.values() if group_rewards_differ(g)]
    flat = [g for g in groups.values() if not group_rewards_differ(g)]
    return differ, flat


def _turn_end_rewards(samples: Sequence[Sample], width: int) -> torch.Tensor:
    """``(B, L)`` with each turn's env reward on the last token generated in that turn."""
    rewards = torch.zeros((len(samples), width), dtype=torch.float32)
    for row, sample in enumerate(samples):
        last: dict[int, int] = {}
        for position, turn in enumerate(sample.turn_of_token):
            if turn >= 0:
                last[turn] = position
        for turn, position in last.items():
            rewards[row, position] = sample.turn_rewards[turn]
    return rewards
