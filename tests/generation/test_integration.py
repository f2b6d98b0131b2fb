"""Stage 3: same-function tools merge (n → m ≤ n) and the assignment follows."""

from __future__ import annotations

import random

from ftrl_gym.generation.documents import generate_documents
from ftrl_gym.generation.integration import integrate
from ftrl_gym.generation.scenes import SCENARIOS, decompose


def test_identical_ops_always_merge_into_one_tool(make_scene):
    scene = make_scene([("city.population", 0), ("city.population", 1), ("river.length", 0)])
    toolset = integrate(
        scene, generate_documents(scene, random.Random(0)), random.Random(0), merge_rate=0.0
    )
    assert len(toolset.docs) == 2
    assert toolset.assignment["n0"] == toolset.assignment["n1"] != toolset.assignment["n2"]
    assert toolset.doc(toolset.assignment["n0"]).ops == ["city.population"]
    assert toolset.log and "merged" in toolset.log[0]


def test_different_ops_of_one_family_merge_into_a_broad_tool_with_a_selector(make_scene):
    scene = make_scene([("city.population", 0), ("city.mayor", 1), ("river.length", 0)])
    toolset = integrate(
        scene, generate_documents(scene, random.Random(0)), random.Random(0), merge_rate=1.0
    )
    broad = toolset.doc(toolset.assignment["n0"])
    assert toolset.assignment["n1"] == broad.name and len(toolset.docs) == 2
    assert broad.ops == ["city.population", "city.mayor"]
    assert broad.selectors == {"city.population": "population", "city.mayor": "mayor"}
    selector = broad.schema()["function"]["parameters"]["properties"][broad.roles["selector"]]
    assert selector["enum"] == ["population", "mayor"]


def test_rate_zero_keeps_different_ops_apart(make_scene):
    scene = make_scene([("city.population", 0), ("city.mayor", 1)])
    toolset = integrate(
        scene, generate_documents(scene, random.Random(0)), random.Random(0), merge_rate=0.0
    )
    assert len(toolset.docs) == 2 and toolset.log == []


def test_m_never_exceeds_n_and_every_node_is_assigned(world):
    rng = random.Random(5)
    for scenario in SCENARIOS:
        for _ in range(30):
            scene = decompose(scenario, world, rng)
            toolset = integrate(scene, generate_documents(scene, rng), rng)
            assert len(toolset.docs) <= len(scene.nodes)
            assert set(toolset.assignment) == {n.id for n in scene.nodes}
            assert set(toolset.assignment.values()) == {d.name for d in toolset.docs}
