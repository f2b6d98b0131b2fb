"""Stage 1: every scenario's DAG shape, answers that follow from the world, turn levels."""

from __future__ import annotations

import random

import pytest

from ftrl_gym.generation.scenes import SCENARIOS, Scene, decompose
from ftrl_gym.generation.world import RELATIONS


def scenes(world, scenario: str, count: int = 40) -> list[Scene]:
    rng = random.Random(scenario)
    return [decompose(scenario, world, rng) for _ in range(count)]


def test_single_hop_is_one_lookup(world):
    for scene in scenes(world, "single_hop"):
        assert (
            len(scene.nodes) == 1 and scene.nodes[0].depends_on == [] and scene.nodes[0].is_lookup
        )
        assert scene.answer == scene.nodes[0].answer
        assert scene.question.endswith((".", "?"))


def test_parallel_single_hop_is_two_to_four_independent_nodes(world):
    sizes = set()
    for scene in scenes(world, "parallel_single_hop"):
        sizes.add(len(scene.nodes))
        assert all(n.depends_on == [] for n in scene.nodes)
        assert len(scene.levels()) == 1
        assert scene.answer == ", ".join(n.answer for n in scene.nodes)
    assert sizes == {2, 3, 4}


def test_multi_hop_is_a_chain_of_two_to_five(world):
    lengths = set()
    for scene in scenes(world, "multi_hop", 80):
        lengths.add(len(scene.nodes))
        for prev, node in zip(scene.nodes, scene.nodes[1:]):
            assert node.depends_on == [prev.id]
        assert [len(level) for level in scene.levels()] == [1] * len(scene.nodes)
        assert scene.answer == scene.nodes[-1].answer
    assert lengths == {2, 3, 4, 5}


def test_parallel_multi_hop_is_parallel_chains_or_a_join(world):
    shapes = set()
    for scene in scenes(world, "parallel_multi_hop", 60):
        last = scene.nodes[-1]
        if len(last.depends_on) == 2:
            shapes.add("join")
            assert last.op in ("math.add", "math.subtract", "math.divide", "date.days_between")
        else:
            shapes.add("chains")
            roots = [n for n in scene.nodes if not n.depends_on]
            assert len(roots) >= 2 and len(scene.levels()) >= 2
    assert shapes == {"join", "chains"}


def test_answers_follow_from_the_world_hop_by_hop(world):
    for scene in scenes(world, "multi_hop"):
        for node in scene.nodes:
            if node.is_lookup:
                relation = RELATIONS[node.op]
                value = world.value(world.find(node.inputs["subject"]), relation)
                assert node.answer == (
                    value.name if relation.value_type == "entity" else str(value)
                )
            for dep in node.depends_on:
                parent = scene.node(dep)
                assert parent.value in node.inputs.values() or parent.answer in node.inputs.values()


def test_scene_is_dumpable_with_explicit_edges(world):
    scene = scenes(world, "parallel_multi_hop", 1)[0]
    dumped = scene.to_dict()
    assert dumped["edges"] == [(d, n.id) for n in scene.nodes for d in n.depends_on]
    assert dumped["scenario"] == "parallel_multi_hop" and len(dumped["nodes"]) == len(scene.nodes)


def test_unknown_scenario_names_the_choices(world):
    with pytest.raises(
        ValueError, match="unknown scenario 'triple_hop'; expected one of single_hop"
    ):
        decompose("triple_hop", world, random.Random(0))
    assert len(SCENARIOS) == 4
