"""The pipeline end to end: determinism to the byte, summaries, configuration errors."""

from __future__ import annotations

import pytest

from ftrl_gym.generation.pipeline import GenerationConfig, generate
from ftrl_gym.tasks import save_tasks


def write(records, tmp_path, name):
    path = tmp_path / name
    save_tasks([r for tasks in records.values() for r in tasks], path, json_strings=False)
    return path.read_bytes()


def test_same_seed_twice_gives_identical_bytes_and_another_seed_does_not(sandbox, tmp_path):
    config = GenerationConfig(n=6, seed=11, split="test")
    first, _ = generate(config, sandbox)
    second, _ = generate(GenerationConfig(n=6, seed=11, split="test"), sandbox)
    other, _ = generate(GenerationConfig(n=6, seed=12, split="test"), sandbox)
    assert write(first, tmp_path, "a") == write(second, tmp_path, "b")
    assert write(first, tmp_path, "a") != write(other, tmp_path, "c")


def test_train_and_test_use_different_worlds(sandbox):
    train, _ = generate(
        GenerationConfig(scenarios=["single_hop"], n=5, seed=1, split="train"), sandbox
    )
    test, _ = generate(
        GenerationConfig(scenarios=["single_hop"], n=5, seed=1, split="test"), sandbox
    )
    assert {t.messages[0]["content"] for t in train["single_hop"]}.isdisjoint(
        t.messages[0]["content"] for t in test["single_hop"]
    )


def test_summary_counts_and_diversity(sandbox):
    progress = []
    records, summary = generate(
        GenerationConfig(n=10, seed=5, split="test"), sandbox, progress.append
    )
    assert len(progress) == 40 and {len(tasks) for tasks in records.values()} == {10}
    figures = summary.to_dict()
    assert figures["accepted"] == {
        "multi_hop": 10,
        "parallel_multi_hop": 10,
        "parallel_single_hop": 10,
        "single_hop": 10,
    }
    assert sum(figures["hops"].values()) == sum(figures["tools_per_task"].values()) == 40
    assert figures["distinct_tool_names"] > 60 and figures["distinct_templates"] >= 35
    assert len(figures["domains"]) == 7
    assert "distinct_tool_names" in summary.render()
    for task in records["multi_hop"]:
        assert (
            task.split == "test"
            and task.scenario == "multi_hop"
            and task.extra["meta"]["hops"] >= 2
        )


def test_config_errors_say_how_to_fix():
    with pytest.raises(ValueError, match="unknown scenario"):
        GenerationConfig(scenarios=["quad_hop"])
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'dev'"):
        GenerationConfig(split="dev")
