"""Advantages of the two sample schemes, against hand-computed values."""

from __future__ import annotations

import pytest

from ftrl_gym.agents.training.generation import Completion
from ftrl_gym.agents.training.rollout import Episode, Turn
from ftrl_gym.agents.training.samples import (
    Sample,
    assign_advantages,
    episode_samples,
    group_signal,
    outcome_score,
)


def _turn_sample(group: str, score: float) -> Sample:
    # 2 prompt ids, 2 generated ids
    return Sample([1, 2, 3, 4], [0, 0, 1, 1], [0.0, 0.0, -1.0, -1.0], group, score)


def test_scheme_a_grpo_normalises_within_each_prefix_group() -> None:
    samples = [
        _turn_sample("p", 1.0),
        _turn_sample("p", 0.0),
        _turn_sample("q", 0.5),
        _turn_sample("q", 0.5),
    ]
    assign_advantages(samples, "grpo")
    # group p: mean 0.5, unbiased std sqrt(0.5) = 0.7071 -> +-0.7071; group q: equal scores -> 0
    assert samples[0].advantages == pytest.approx([0, 0, 0.70711, 0.70711], abs=1e-4)
    assert samples[1].advantages == pytest.approx([0, 0, -0.70711, -0.70711], abs=1e-4)
    assert samples[2].advantages == pytest.approx([0, 0, 0, 0])


def _episode_sample(group: str, rewards: list[float]) -> Sample:
    # prompt id, then per turn: 2 generated ids and one observation id
    ids, mask, turn_of = [0], [0], [-1]
    for turn in range(len(rewards)):
        ids += [1, 1, 9]
        mask += [1, 1, 0]
        turn_of += [turn, turn, -1]
    return Sample(ids, mask, [0.0] * len(ids), group, sum(rewards), list(rewards), turn_of)


def test_scheme_b_grpo_gives_each_turn_its_turn_level_advantage() -> None:
    samples = [_episode_sample("t", [1.0, 0.0]), _episode_sample("t", [0.0])]
    assign_advantages(samples, "grpo", gamma=1.0)
    # returns: episode 1 -> [1, 0], episode 2 -> [0]; turn 0: [1, 0] -> +-0.7071; turn 1: alone -> 0
    high, low = 0.70711, -0.70711
    assert samples[0].advantages == pytest.approx([0, high, high, 0, 0, 0, 0], abs=1e-4)
    assert samples[1].advantages == pytest.approx([0, low, low, 0], abs=1e-4)


def test_an_episode_without_turns_keeps_the_batch_turn_level() -> None:
    samples = [
        _episode_sample("t", [1.0, 0.0]),
        _episode_sample("t", [0.0]),
        _episode_sample("t", []),
    ]
    assign_advantages(samples, "grpo", gamma=1.0)
    # the same advantages as without the empty episode (which has no generated token)
    assert samples[0].advantages == pytest.approx([0, 0.70711, 0.70711, 0, 0, 0, 0], abs=1e-4)
    assert samples[1].advantages == pytest.approx([0, -0.70711, -0.70711, 0], abs=1e-4)
    assert samples[2].advantages == [0.0]


def test_scheme_b_reinforce_pp_puts_turn_rewards_on_turn_ends() -> None:
    samples = [_episode_sample("t", [1.0, 0.0]), _episode_sample("u", [0.0])]
    assign_advantages(samples, "reinforce_pp", gamma=1.0)
    # returns over generated tokens: [1, 1, 0, 0] and [0, 0]; mean 1/3, unbiased std 0.5164
    high, low = (1 - 1 / 3) / 0.516398, (0 - 1 / 3) / 0.516398
    assert samples[0].advantages == pytest.approx([0, high, high, 0, low, low, 0], abs=1e-4)
    assert samples[1].advantages == pytest.approx([0, low, low, 0], abs=1e-4)


def _solve_and_penalty_groups() -> list[Sample]:
    """A group where one response solved (1 against 0), one where one was malformed (0 against -0.3)."""
    return [
        _turn_sample("solve", 1.0),
        _turn_sample("solve", 0.0),
        _turn_sample("penalty", 0.0),
        _turn_sample("penalty", -0.3),
    ]


def test_group_signal_separates_solving_groups_from_penalty_only_groups() -> None:
    samples = _solve_and_penalty_groups() + [_turn_sample("flat", 0.0), _turn_sample("flat", 0.0)]
    assign_advantages(samples, "grpo", normalize_by_std=False)
    # centred scores: solve +-0.5, penalty +-0.15, flat 0; two generated tokens each
    # mass: solve 2 * 2 * 0.5 = 2.0, penalty 2 * 2 * 0.15 = 0.6 -> share 0.6 / 2.6
    signal = group_signal(samples)
    assert signal["groups_rewarded"] == 1
    assert signal["groups_penalty_only"] == 1
    assert signal["groups_flat"] == 1
    assert signal["penalty_only_share"] == pytest.approx(0.6 / 2.6, abs=1e-6)


def test_std_normalisation_gives_a_penalty_only_group_a_solving_groups_weight() -> None:
    samples = _solve_and_penalty_groups()
    assign_advantages(samples, "grpo", normalize_by_std=True)
    # each two-member group becomes +-0.7071 whatever its spread: the -0.3 group weighs as much
    assert group_signal(samples)["penalty_only_share"] == pytest.approx(0.5, abs=1e-4)


def test_group_signal_of_a_batch_without_spread_is_zero() -> None:
    samples = [_turn_sample("flat", 0.5), _turn_sample("flat", 0.5)]
    assign_advantages(samples, "grpo")
    assert group_signal(samples) == {
        "groups_rewarded": 0,
        "groups_penalty_only": 0,
        "groups_flat": 1,
        "penalty_only_share": 0.0,
    }


def test_outcome_score_is_solve_f1_plus_the_format_penalties() -> None:
    # Two answers (T = 2). One turn of two calls, one solving (turn reward 2/3), then one failed call
    # (0): C = 3, S = 1, Solve-F1 = 2 / 5. The failed call cost the outcome 2/3 - 2/5.
    assert outcome_score([2 / 3, 0.0], 0.4) == pytest.approx(0.4)
    # A malformed turn (-0.3) parses no call, then one solving call: C = 1, S = 1, F1 = 2 / 3.
    assert outcome_score([-0.3, 1.0], 2 / 3) == pytest.approx(2 / 3 - 0.3)
    # An empty turn (-0.5) and a malformed one (-0.3), nothing obtained.
    assert outcome_score([-0.5, -0.3], 0.0) == pytest.approx(-0.8)


def _episode(rewards: list[float], solve_f1: float) -> Episode:
    # prompt id, then per turn: 2 generated ids and one observation id (as ``take_turn`` appends them)
    episode = Episode("FTRL-SingleHop-v0", 0, 0, "t", metrics={"solve_f1": solve_f1})
    episode.extend([0], generated=False)
    for reward in rewards:
        prompt = list(episode.token_ids)
        completion = Completion([1, 1], [-0.5, -0.5], True)
        episode.extend(completion.token_ids, generated=True, logprobs=completion.logprobs)
        episode.turns.append(Turn(prompt, completion, "", reward))
        episode.extend([9], generated=False)
    return episode


def test_outcome_samples_charge_a_failed_call_that_the_turn_reward_does_not() -> None:
    # T = 2 answers. A: a solving call (1.0), then a failed call (0): C = 2, S = 1, F1 = 2 / 4.
    # B: the same solving call, then a text answer (0): C = 1, S = 1, F1 = 2 / 3.
    # C: a malformed turn (-0.3), then text (0): nothing obtained.
    episodes = [_episode([1.0, 0.0], 0.5), _episode([1.0, 0.0], 2 / 3), _episode([-0.3, 0.0], 0.0)]
    turn = episode_samples(episodes, "turn")
    assert [s.score for s in turn] == pytest.approx([1.0, 1.0, -0.3])
    assert turn[0].turn_rewards == pytest.approx([1.0, 0.0])
    outcome = episode_samples(episodes, "outcome")
    assert [s.score for s in outcome] == pytest.approx([0.5, 2 / 3, -0.3])
    assert all(s.turn_rewards == [] for s in outcome)
    assign_advantages(outcome, "grpo", normalize_by_std=True)
    # scores 0.5, 0.66667, -0.3: mean 0.28889, unbiased std 0.51676
    a, b, c = 0.40853, 0.73105, -1.13959
    assert outcome[0].advantages == pytest.approx([0, a, a, 0, a, a, 0], abs=1e-4)
    assert outcome[1].advantages == pytest.approx([0, b, b, 0, b, b, 0], abs=1e-4)
    assert outcome[2].advantages == pytest.approx([0, c, c, 0, c, c, 0], abs=1e-4)
    with pytest.raises(ValueError, match="unknown episode reward 'final': use turn or outcome"):
        episode_samples(episodes, "final")
