"""Stage 2: one schema per sub-problem, realistic varied names, typed and required parameters."""

from __future__ import annotations

import random
import re

from ftrl_gym.generation.documents import (
    VERBS,
    broad_compute_doc,
    compute_doc,
    doc_op,
    generate_documents,
    lookup_doc,
    styled,
)
from ftrl_gym.generation.scenes import SCENARIOS, decompose


def test_styled_names():
    assert styled(["get", "city", "head_of_state"], "snake") == "get_city_head_of_state"
    assert styled(["get", "city", "head_of_state"], "camel") == "getCityHeadOfState"


def test_one_document_per_sub_problem_even_for_the_same_op(make_scene):
    scene = make_scene([("city.population", 0), ("city.population", 1), ("river.length", 0)])
    docs = generate_documents(scene, random.Random(0))
    assert len(docs.docs) == 3 and len({d.name for d in docs.docs}) == 3
    assert [d.ops for d in docs.docs] == [
        ["city.population"],
        ["city.population"],
        ["river.length"],
    ]
    assert docs.assignment == {
        "n0": docs.docs[0].name,
        "n1": docs.docs[1].name,
        "n2": docs.docs[2].name,
    }


def test_lookup_schema_is_a_valid_openai_function():
    doc = lookup_doc("company.ceo", random.Random(3), set())
    schema = doc.schema()
    function = schema["function"]
    assert schema["type"] == "function" and re.fullmatch(
        r"[A-Za-z_][A-Za-z0-9_]*", function["name"]
    )
    assert function["parameters"]["type"] == "object"
    (param,) = function["parameters"]["properties"]
    assert function["parameters"]["required"] == [param]
    assert function["parameters"]["properties"][param]["type"] == "string"
    assert "company" in function["description"] and "chief executive" in function["description"]


def test_names_vary_in_style_and_verb(world):
    rng = random.Random(7)
    names = []
    for scenario in SCENARIOS:
        for _ in range(60):
            names += [d.name for d in generate_documents(decompose(scenario, world, rng), rng).docs]
    assert any(re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", n) for n in names)
    assert any(re.fullmatch(r"[a-z]+([A-Z][a-z0-9]*)+", n) for n in names)
    used_verbs = {v for v in VERBS for n in names if n.lower().startswith(v)}
    assert len(used_verbs) >= 5
    assert len(set(names)) > len(names) // 3


def test_computation_documents_have_typed_roles():
    rng = random.Random(1)
    converter = compute_doc("convert:m:ft", rng, set())
    assert converter.options["fixed"] == ["m", "ft"] and list(converter.roles) == ["value"]
    assert converter.params[0].type == "number"
    dates = broad_compute_doc("date", ["date.add_days", "date.days_between"], rng, set())
    properties = dates.schema()["function"]["parameters"]
    assert properties["properties"][dates.roles["operation"]]["enum"] == [
        "add_days",
        "days_between",
    ]
    assert properties["required"] == [dates.roles["operation"], dates.roles["date"]]


def test_doc_op_keys_conversions_by_unit(world):
    scene = decompose("multi_hop", world, random.Random(11))
    for node in scene.nodes:
        op = doc_op(node)
        assert op == node.op or op == f"convert:{node.inputs['from_unit']}:{node.inputs['to_unit']}"
