"""Advantage estimators for policy-gradient training: GRPO and Reinforce++ (pure tensor functions).

Shapes: ``B`` sequences (responses) in a batch, ``T`` response tokens per sequence (right-padded);
``mask`` is 1.0 on tokens the policy generated and 0.0 on padding and on tool/observation tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ftrl_gym.agents.training.masked import masked_whiten


def group_indices(group_ids: Sequence[object]) -> list[list[int]]:
    """Group batch positions by prompt id, in order of first appearance.

    Args:
        group_ids: One id per sequence; sequences answering the same prompt share an id.

    Returns:
        A list of index lists, one per distinct id.
    """
    groups: dict[object, list[int]] = {}
    for position, group_id in enumerate(group_ids):
        groups.setdefault(group_id, []).append(position)
    return list(groups.values())


def grpo_advantages(
    scores: torch.Tensor,
    group_ids: Sequence[object],
    normalize_by_std: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Group-relative advantages (GRPO): each score minus its group's mean, over the group's std.

    ``A_i = (r_i - mean(r_group)) / (std(r_group) + eps)`` with the unbiased (Bessel-corrected) std, as
    in DeepSeekMath's GRPO. With ``normalize_by_std=False`` the division is dropped (Dr. GRPO). A group
    of one sequence has no baseline and gets advantage 0.

    Args:
        scores: ``(B,)`` scalar reward of each sequence.
        group_ids: ``B`` prompt ids.
        normalize_by_std: Divide by the group's standard deviation.
        eps: Added to the std so that a group of equal scores gives 0, not NaN.

    Returns:
        ``(B,)`` advantages.
    """
    if scores.dim() != 1 or scores.shape[0] != len(group_ids):
        raise ValueError(
            f"scores must have shape (B,) with B = len(group_ids) = {len(group_ids)}; "
            f"got {tuple(scores.shape)}"
        )
    advantages = torch.zeros_like(scores, dtype=torch.float32)
    for members in group_indices(group_ids):
        if len(members) < 2:
            continue
        group = scores[members].float()
        centred = group - group.mean()
        advantages[members] = centred / (group.std() + eps) if normalize_by_std else centred
    return advantages


def discounted_returns(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted reward-to-go over each sequence's generated tokens.

    ``G_t = r_t + gamma * G_{t+1}``; masked positions carry no reward and do not break the chain (a
    tool observation between two assistant turns is skipped, not a terminal).

    Args:
        token_rewards: ``(B, T)`` reward per token (usually the score on the last generated token).
        mask: ``(B, T)`` 1.0 on generated tokens.
        gamma: Discount per generated token, in ``[0, 1]``.

    Returns:
        ``(B, T)`` returns, zero on masked positions.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1]; got {gamma}")
    returns = torch.zeros_like(token_rewards, dtype=torch.float32)
    running = torch.zeros(token_rewards.shape[0], dtype=torch.float32)
    for t in reversed(range(token_rewards.shape[1])):
        step_mask = mask[:, t].float()
        running = step_mask * (token_rewards[:, t].float() + gamma * running) + (1 - step_mask) * running
        returns[:, t] = running * step_mask
    return returns


def reinforce_pp_advantages(
    token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    """Reinforce++ advantages: discounted returns whitened over every generated token of the batch.

    Args:
        token_rewards: ``(B, T)`` reward per token.
        mask: ``(B, T)`` 1.0 on generated tokens.
        gamma: Discount per token.

    Returns:
        ``(B, T)`` advantages with zero mean and unit variance over masked tokens; zero elsewhere.
    """
    returns = discounted_returns(token_rewards, mask, gamma)
    return masked_whiten(returns, mask) * mask


def reinforce_pp_baseline_advantages(
    scores: torch.Tensor, group_ids: Sequence[object], mask: torch.Tensor
) -> torch.Tensor:
    """Reinforce++ with a group baseline: subtract the prompt's mean score, then whiten over the batch.

    Args:
        scores: ``(B,)`` sequence rewards.
        group_ids: ``B`` prompt ids.
        mask: ``(B, T)`` 1.0 on generated tokens.

    Returns:
        ``(B, T)`` advantages, constant along each sequence before whitening.
    """
    centred = grpo_advantages(scores, group_ids, normalize_by_std=False)
    per_token = centred[:, None] * mask.float()
    return masked_whiten(per_token, mask) * mask


def scatter_scores(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Place each sequence's scalar score on its last generated token.

    Args:
        scores: ``(B,)`` sequence rewards.
        mask: ``(B, T)`` 1.0 on generated tokens; every row must have at least one.

    Returns:
        ``(B, T)`` token rewards, zero except on the last generated token of each row.
    """
    positions = torch.arange(mask.shape[1]).expand_as(mask)
    last = torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values
    if (last < 0).any():
        raise ValueError("every sequence needs at least one generated token (mask row of zeros)")
    token_rewards = torch.zeros(mask.shape, dtype=torch.float32)
    token_rewards[torch.arange(mask.shape[0]), last] = scores.float()
    return token_rewards



def turn_returns(turn_rewards: Sequence[float], gamma: float) -> list[float]:
    """Discounted return of each assistant turn of one episode, ``G_k = r_k + gamma * G_{k+1}``.

    Args:
        turn_rewards: The env's reward for each assistant turn, in order.
        gamma: Discount per turn, in ``[0, 1]``.

    Returns:
        One return per turn.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1]; got {gamma}")
    returns: list[float] = []
    running = 0.0
    for reward in reversed(turn_rewards):
        running = float(reward) + gamma * running
        returns.append(running)
    return returns[::-1]


def turn_level_advantages(
    episodes_turn_rewards: Sequence[Sequence[float]],
    group_ids: Sequence[object],
    gamma: float = 1.0,
    normalize_by_std: bool = True,
    eps: float = 1e-6,
) -> list[list[float]]:
    """Turn-level advantages for online multi-turn episodes (scheme b), a baseline per turn index.

    Turn ``k`` of an episode of task ``g`` has the discounted return ``G_k`` (``turn_returns``). Its
    advantage compares ``G_k`` only with the returns of turn ``k`` of the other episodes of the same
    task, the bucket ``(g, k)``: ``A = (G_k - mean_{(g, k)} G) / (std_{(g, k)} G + eps)``.

    Why per turn index. The policy gradient of an episode is ``sum_k grad log pi(a_k | s_k) (G_k -
    b_k)``, and a baseline keeps it unbiased when ``E[grad log pi(a_k | s_k) b_k] = 0``: any
    ``b_k`` fixed before ``a_k`` is drawn qualifies, such as the expected return of turn ``k`` of
    task ``g``, estimated by the bucket's mean. Pooling every turn's return into one mean instead
    (the earlier estimator) is not such a baseline for any single turn: ``G_k`` sums the rewards
    from turn ``k`` on, so early turns' returns exceed late turns' whatever was done, and two
    identical episodes with turn rewards ``[1, 1]`` (returns ``[2, 1]``) got ``[+0.87, -0.87]``
    each. Per turn index they get ``[0, 0]``. The bucket mean includes the episode's own return,
    which scales the leave-one-out (exactly unbiased) advantage ``G_k - mean of the others`` by
    ``(n - 1) / n``, a positive constant per bucket; the division by the bucket's std is GRPO's
    per-group scaling.

    A bucket with fewer than two returns (a turn only one episode of the task reached) has no
    baseline, and its turn gets 0. An episode with no turns gets an empty list and changes nothing
    for the others.

    Args:
        episodes_turn_rewards: Per episode, the reward of each assistant turn.
        group_ids: One task id per episode.
        gamma: Discount per turn.
        normalize_by_std: Divide by the bucket's (unbiased) standard deviation.
        eps: Added to the std.

    Returns:
        Per episode, the advantage of each turn.
    """
    if len(episodes_turn_rewards) != len(group_ids):
        raise ValueError(
            f"need one group id per episode: {len(episodes_turn_rewards)} episodes, "
            f"{len(group_ids)} ids"
        )
    returns = [turn_returns(rewards, gamma) for rewards in episodes_turn_rewards]
    advantages = [[0.0] * len(r) for r in returns]
    buckets: dict[tuple[object, int], list[int]] = {}
    for episode, (group_id, episode_returns) in enumerate(zip(group_ids, returns)):
        for turn in range(len(episode_returns)):
            buckets.setdefault((group_id, turn), []).append(episode)
    for (_, turn), members in buckets.items():
        if len(members) < 2:
            continue
        values = torch.tensor([returns[m][turn] for m in members], dtype=torch.float64)
        centred = values - values.mean()
        scaled = centred / (float(values.std()) + eps) if normalize_by_std else centred
        for member, advantage in zip(members, scaled.tolist()):
            advantages[member][turn] = advantage
    return advantages
