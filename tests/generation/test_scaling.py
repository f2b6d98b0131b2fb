"""Stage 4: each scaling operation at its rate; distractors never cover a needed op."""

from __future__ import annotations

import random

import pytest

from ftrl_gym.generation.documents import generate_documents
from ftrl_gym.generation.integration import integrate
from ftrl_gym.generation.scaling import ScalingConfig, scale
from ftrl_gym.generation.scenes import decompose

OFF = {"functional_rate": 0.0, "parameter_rate": 0.0, "type_rate": 0.0, "distractor_rate": 0.0}


def toolset_for(make_scene, ops, seed=0):
    scene = make_scene(ops)
    return scene, integrate(
        scene, generate_documents(scene, random.Random(seed)), random.Random(seed), 0.0
    )


def test_all_rates_zero_changes_nothing(make_scene):
    scene, toolset = toolset_for(make_scene, [("city.elevation", 0), ("person.height", 0)])
    before = [d.schema() for d in toolset.docs]
    scaled = scale(scene, toolset, random.Random(0), ScalingConfig(**OFF))
    assert [d.schema() for d in scaled.docs] == before and scaled.log == []


def test_functional_generalisation_widens_a_tool_and_moves_its_nodes(make_scene):
    scene, toolset = toolset_for(make_scene, [("city.elevation", 0)])
    scaled = scale(
        scene, toolset, random.Random(0), ScalingConfig(**OFF | {"functional_rate": 1.0})
    )
    (doc,) = scaled.docs
    assert doc.ops[0] == "city.elevation" and 2 <= len(doc.ops) <= 4
    assert all(op.startswith("city.") for op in doc.ops)
    assert scaled.assignment == {"n0": doc.name} and "selector" in doc.roles


def test_parameter_expansion_adds_only_optional_parameters(make_scene):
    scene, toolset = toolset_for(make_scene, [("city.elevation", 0)])
    required_before = toolset.docs[0].schema()["function"]["parameters"]["required"]
    scaled = scale(scene, toolset, random.Random(0), ScalingConfig(**OFF | {"parameter_rate": 1.0}))
    doc = scaled.docs[0]
    assert len(toolset.docs[0].params) == 1, "the stage-3 output is left as it was"
    assert (
        len(doc.params) > 1
        and doc.schema()["function"]["parameters"]["required"] == required_before
    )
    assert set(doc.options) & {"unit", "format", "verbose"}
    for param in doc.params[1:]:
        assert not param.required and param.default is not None


def test_type_generalisation_accepts_ids_or_returns_objects(make_scene):
    seen = set()
    for seed in range(12):
        scene, toolset = toolset_for(make_scene, [("city.elevation", 0)], seed)
        doc = scale(
            scene, toolset, random.Random(seed), ScalingConfig(**OFF | {"type_rate": 1.0})
        ).docs[0]
        if doc.options.get("accepts_ids"):
            seen.add("ids")
            assert doc.param(doc.roles["subject"]).type == ["string", "integer"]
        if doc.options.get("structured"):
            seen.add("structured")
            assert doc.description.endswith("Returns a JSON object.")
    assert seen == {"ids", "structured"}


def test_distractors_are_plausible_and_never_cover_needed_ops(world):
    rng = random.Random(2)
    config = ScalingConfig(**OFF | {"distractor_rate": 1.0})
    for _ in range(40):
        scene = decompose("multi_hop", world, rng)
        toolset = scale(scene, integrate(scene, generate_documents(scene, rng), rng), rng, config)
        needed = {op for d in toolset.docs if not d.distractor for op in d.ops}
        decoys = [d for d in toolset.docs if d.distractor]
        assert 1 <= len(decoys) <= 3
        assert not needed & {op for d in decoys for op in d.ops}
        assert not set(toolset.assignment.values()) & {d.name for d in decoys}


def test_config_rejects_rates_outside_zero_one():
    with pytest.raises(
        ValueError, match=r"ScalingConfig.type_rate must be a probability in \[0, 1\], got 1.5"
    ):
        ScalingConfig(type_rate=1.5)
