"""DAPO-style dynamic sampling: flat groups are dropped and the step refills with groups whose
rewards differ, counted in the step's metrics (hand-checked with a scripted generator)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.samples import Sample, group_rewards_differ, split_groups
from ftrl_gym.agents.training.trainer import RLTrainer, refill_count
from training_helpers import EASY_ANSWER, ScriptedGenerator, tiny_model, write_easy_tasks

PATTERN = [0, 1, 0, 0, 2, 2, 1, 0]
"""How many of its 4 responses say the answer (0.5 each; the others score 0) on the k-th task the
trainer draws, in drawing order: 0 makes a flat group."""


@pytest.fixture
def eight_tasks(tmp_path: Path) -> Path:
    """Eight train tasks ``Say it i.`` whose answer is ``w``: a reply holding it scores 0.5."""
    return write_easy_tasks(tmp_path / "eight.jsonl", 8)


def _scripted_step(tokenizer, tasks: Path, tmp_path: Path, **overrides):
    """One GRPO step of scheme ``turn`` on the eight tasks, answered by ``PATTERN``."""
    config = build_config(
        overrides={
            "env_ids": ["FTRL-Custom-v0"],
            "tasks": str(tasks),
            "train_tasks": 8,
            "max_turns": 2,
            "prompts_per_step": 2,
            "rollouts_per_prompt": 4,
            "mini_batch_size": 2,
            "max_new_tokens": 8,
            "max_context_tokens": 1024,
            "kl_coef": 0.0,
            "epochs": 1,
            "torch_threads": 1,
            "dynamic_sampling": True,
            **overrides,
        }
    )
    trainer = RLTrainer(
        config, tmp_path, policy=Policy(tiny_model(tokenizer), tokenizer), progress=False
    )
    order: dict[str, int] = {}

    def reply(text: str, key: int) -> str:
        task = re.search(r"Say it (\d+)\.", text).group(1)
        return EASY_ANSWER if key < PATTERN[order.setdefault(task, len(order))] else "no"

    scripted = trainer.backend.generator = ScriptedGenerator(tokenizer, reply)
    trained: list[list[Sample]] = []
    update = trainer._update
    trainer._update = lambda samples: trained.append(samples) or update(samples)
    try:
        metrics = trainer.train_step()
    finally:
        trainer.close()
    return metrics, trained[0], scripted.prompts


def test_flat_groups_are_dropped_and_refilled_until_the_batch_has_signal(
    tokenizer, eight_tasks: Path, tmp_path: Path
) -> None:
    metrics, trained, prompts = _scripted_step(tokenizer, eight_tasks, tmp_path)
    # Draw 1: tasks 0 (flat) and 1 (one answer): 1 kept, 1 dropped. Refill 1 draws
    # ceil(1 missing * 2 seen / 1 kept) = 2: tasks 2, 3, both flat. Refill 2 draws min(2, 4) = 2:
    # tasks 4 and 5, two answers each: 3 with signal, 2 kept, 1 surplus.
    assert {
        k: metrics[k]
        for k in (
            "groups_kept",
            "groups_dropped",
            "groups_refilled",
            "resample_rounds",
            "groups_surplus",
        )
    } == {
        "groups_kept": 2,
        "groups_dropped": 3,
        "groups_refilled": 4,
        "resample_rounds": 2,
        "groups_surplus": 1,
    }
    # Six one-turn episodes, then four responses to each of their six prefixes (one prompt each).
    assert prompts == 6 + 6
    # 24 responses drawn, 1 + 2 + 2 of them at 0.5: 2.5 / 24; the trained 8 hold 1 + 2: 1.5 / 8.
    assert metrics["reward"] == pytest.approx(2.5 / 24)
    assert metrics["reward_trained"] == pytest.approx(1.5 / 8)
    assert sorted(s.score for s in trained) == [0, 0, 0, 0, 0, 0.5, 0.5, 0.5]
    assert metrics["groups_flat"] == 0


def test_the_round_budget_stops_the_refill(tokenizer, eight_tasks: Path, tmp_path: Path) -> None:
    metrics, trained, _ = _scripted_step(tokenizer, eight_tasks, tmp_path, max_resample_rounds=1)
    # Draw 1 keeps task 1; the one refill round finds tasks 2 and 3 flat: one group trains.
    assert (metrics["groups_kept"], metrics["groups_dropped"], metrics["resample_rounds"]) == (
        1,
        3,
        1,
    )
    assert sorted(s.score for s in trained) == [0, 0, 0, 0.5]
    assert metrics["reward"] == pytest.approx(0.5 / 16)


def test_without_dynamic_sampling_flat_groups_stay(
    tokenizer, eight_tasks: Path, tmp_path: Path
) -> None:
    metrics, trained, prompts = _scripted_step(
        tokenizer, eight_tasks, tmp_path, dynamic_sampling=False
    )
    assert "groups_dropped" not in metrics and metrics["reward"] == pytest.approx(0.5 / 8)
    assert (metrics["groups_flat"], metrics["groups_rewarded"], len(trained), prompts) == (
        1,
        1,
        8,
        4,
    )


def test_reinforce_pp_ignores_dynamic_sampling(
    tokenizer, eight_tasks: Path, tmp_path: Path
) -> None:
    metrics, trained, _ = _scripted_step(tokenizer, eight_tasks, tmp_path, algorithm="reinforce_pp")
    assert "groups_dropped" not in metrics and len(trained) == 8


def _sample(group: str, score: float, turn_rewards=()) -> Sample:
    return Sample([1, 2], [0, 1], [0.0, -1.0], group, score, list(turn_rewards))


def test_a_group_is_flat_only_when_every_reward_agrees() -> None:
    assert not group_rewards_differ([_sample("a", 0.5), _sample("a", 0.5)])
    assert group_rewards_differ([_sample("a", 0.5), _sample("a", 0.0)])
    # Scheme episode: the same return from different turn rewards still gives turn-level signal.
    assert group_rewards_differ([_sample("a", 0.5, [0.5, 0.0]), _sample("a", 0.5, [0.0, 0.5])])
    differ, flat = split_groups(
        [_sample("a", 0), _sample("b", 1), _sample("a", 0), _sample("b", 0)]
    )
    assert [g[0].group for g in differ] == ["b"] and [g[0].group for g in flat] == ["a"]


def test_refill_count_scales_the_missing_groups_by_the_share_with_signal() -> None:
    assert refill_count(missing=3, seen=8, with_signal=4, most=8) == 6
    assert refill_count(missing=3, seen=8, with_signal=1, most=8) == 8
    assert refill_count(missing=2, seen=4, with_signal=0, most=4) == 4
