"""GRPO and Reinforce++ advantages against hand-computed values."""

import math

import pytest

torch = pytest.importorskip("torch")

from ftrl_gym.agents.training.advantages import (
    discounted_returns,
    grpo_advantages,
    reinforce_pp_advantages,
    reinforce_pp_baseline_advantages,
    scatter_scores,
)


def test_grpo_normalises_each_group_by_its_unbiased_std():
    # group a = [1, 0, 0.5]: mean 0.5, unbiased std sqrt((0.25 + 0.25 + 0) / 2) = 0.5
    scores = torch.tensor([1.0, 0.0, 0.5, 2.0, 2.0, 2.0])
    advantages = grpo_advantages(scores, ["a", "a", "a", "b", "c", "c"])
    assert advantages.tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0, 0.0, 0.0], abs=1e-5)


def test_grpo_without_std_only_centres():
    scores = torch.tensor([1.0, 0.0, 0.5])
    advantages = grpo_advantages(scores, [7, 7, 7], normalize_by_std=False)
    assert advantages.tolist() == pytest.approx([0.5, -0.5, 0.0])


def test_grpo_rejects_mismatched_ids():
    with pytest.raises(ValueError, match="B = len\\(group_ids\\) = 2"):
        grpo_advantages(torch.tensor([1.0, 2.0, 3.0]), ["a", "b"])


def test_discounted_returns_skip_masked_tokens_without_breaking_the_chain():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    returns = discounted_returns(rewards, mask, gamma=0.5)
    assert returns.tolist() == [[0.25, 0.5, 1.0], [0.5, 0.0, 1.0]]


def test_discounted_returns_reject_bad_gamma():
    with pytest.raises(ValueError, match=r"gamma must lie in \[0, 1\]; got 1.5"):
        discounted_returns(torch.zeros(1, 1), torch.ones(1, 1), gamma=1.5)


def test_reinforce_pp_whitens_returns_over_the_batch():
    # returns [[1, 1], [-1, -1]]: mean 0, unbiased variance 4/3 -> 1 / sqrt(4/3) = 0.8660254
    rewards = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    advantages = reinforce_pp_advantages(rewards, torch.ones(2, 2), gamma=1.0)
    expected = 1 / math.sqrt(4 / 3)
    assert advantages.flatten().tolist() == pytest.approx([expected, expected, -expected, -expected], abs=1e-6)


def test_reinforce_pp_baseline_subtracts_group_mean_then_whitens():
    # centred scores [0.5, -0.5, 0, 0]; masked token values .5, .5, -.5, 0, 0, 0, 0
    # mean 1/14, unbiased std 0.3450328 (hand computed)
    scores = torch.tensor([1.0, 0.0, 3.0, 3.0])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    advantages = reinforce_pp_baseline_advantages(scores, ["a", "a", "b", "b"], mask)
    high, low, zero = 1.2421180, -1.6561573, -0.2070197
    assert advantages.flatten().tolist() == pytest.approx(
        [high, high, low, 0.0, zero, zero, zero, zero], abs=1e-5
    )


def test_scatter_scores_puts_the_score_on_the_last_generated_token():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    token_rewards = scatter_scores(torch.tensor([2.0, 3.0]), mask)
    assert token_rewards.tolist() == [[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]]


def test_scatter_scores_rejects_an_empty_response():
    with pytest.raises(ValueError, match="at least one generated token"):
        scatter_scores(torch.tensor([1.0]), torch.zeros(1, 3))


def test_turn_returns_discount_later_turns():
    from ftrl_gym.agents.training.advantages import turn_returns

    assert turn_returns([0.5, 0.0, 1.0], gamma=0.5) == [0.75, 0.5, 1.0]


def test_turn_level_advantages_compare_each_turn_with_the_same_turn_of_the_task():
    from ftrl_gym.agents.training.advantages import turn_level_advantages

    # task a returns (gamma 1): episode 1 -> [2, 1], episode 2 -> [0]
    # bucket (a, 0): [2, 0], mean 1, unbiased std sqrt(2) -> +-0.7071068
    # bucket (a, 1): episode 1 alone, no baseline -> 0; task b has one turn in all -> 0
    advantages = turn_level_advantages([[1.0, 1.0], [0.0], [0.7]], ["a", "a", "b"], gamma=1.0)
    assert advantages[0] == pytest.approx([0.7071068, 0.0], abs=1e-5)
    assert advantages[1] == pytest.approx([-0.7071068], abs=1e-5)
    assert advantages[2] == [0.0]


def test_identical_episodes_get_equal_turn_advantages():
    from ftrl_gym.agents.training.advantages import turn_level_advantages

    # one mean over all turns gave returns [2, 1] the advantages [+0.87, -0.87] in each episode
    advantages = turn_level_advantages([[1.0, 1.0], [1.0, 1.0]], ["a", "a"], gamma=1.0)
    assert advantages == [[0.0, 0.0], [0.0, 0.0]]


def test_turn_level_advantages_credit_the_turn_that_differs():
    from ftrl_gym.agents.training.advantages import turn_level_advantages

    # returns: [1, 0] and [1, 1]; turn 0 ties (0, 0); turn 1: [0, 1] centred -+0.5, std 0.7071068
    advantages = turn_level_advantages([[1.0, 0.0], [0.0, 1.0]], ["a", "a"], gamma=1.0)
    assert advantages[0] == pytest.approx([0.0, -0.7071068], abs=1e-5)
    assert advantages[1] == pytest.approx([0.0, 0.7071068], abs=1e-5)
    centred = turn_level_advantages(
        [[1.0, 0.0], [0.0, 1.0]], ["a", "a"], gamma=1.0, normalize_by_std=False
    )
    assert centred == [[0.0, -0.5], [0.0, 0.5]]


def test_an_episode_with_no_turns_changes_nothing_for_the_others():
    from ftrl_gym.agents.training.advantages import turn_level_advantages

    with_empty = turn_level_advantages([[1.0], [0.0], []], ["a", "a", "a"])
    assert with_empty[2] == []
    assert with_empty[:2] == turn_level_advantages([[1.0], [0.0]], ["a", "a"])
