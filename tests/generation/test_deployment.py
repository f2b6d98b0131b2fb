"""Stage 5a: tool source runs in the sandbox, normalises input and explains unknown input."""

from __future__ import annotations

import random

from ftrl_gym.generation.codegen import tool_source
from ftrl_gym.generation.deployment import call_arguments, deploy, table_rows
from ftrl_gym.generation.documents import (
    broad_compute_doc,
    compute_doc,
    generate_documents,
    lookup_doc,
)
from ftrl_gym.generation.integration import integrate
from ftrl_gym.generation.scaling import ScalingConfig, _add_option, scale
from ftrl_gym.sandbox import ToolCall


def run_tool(sandbox, source: str, tool: str, **arguments):
    with sandbox.open_session({tool: source}) as session:
        return session.call([ToolCall(tool, arguments)])[0]


def test_lookup_tool_normalises_names_and_ids_in_every_code_style(sandbox, world):
    city = world.get(world.by_kind["city"][0])
    for variant in range(3):
        doc = lookup_doc("city.population", random.Random(variant), set())
        doc.variant = variant
        doc.options["accepts_ids"] = True
        source = tool_source(doc, table_rows(doc, [city], world, random.Random(0)))
        param = doc.roles["subject"]
        assert ("import json" in source.split("def ")[0]) == (variant != 1)
        for spelling in (city.name, f"  {city.name.upper()} ", city.id, str(city.id)):
            result = run_tool(sandbox, source, doc.name, **{param: spelling})
            assert result.ok and result.text == str(city.attrs["population"]), (
                variant,
                spelling,
                result,
            )


def test_unknown_input_gets_a_helpful_error_in_every_code_style(sandbox, world):
    texts = []
    for variant in range(3):
        doc = lookup_doc("city.population", random.Random(variant), set())
        doc.variant = variant
        source = tool_source(doc, table_rows(doc, [], world, random.Random(0)))
        result = run_tool(sandbox, source, doc.name, **{doc.roles["subject"]: "Atlantis"})
        texts.append(result.text if result.ok else result.error)
    assert "unknown city 'Atlantis'; check the spelling" in texts[0] and texts[0].startswith(
        "Error"
    )
    assert "unknown city 'Atlantis'" in texts[1]
    assert texts[2] == '{"error": "unknown city \'Atlantis\'; check the spelling"}'


def test_optional_parameters_change_the_output_as_documented(sandbox, world):
    city = world.get(world.by_kind["city"][0])
    doc = lookup_doc("city.elevation", random.Random(0), set())
    for option in ("unit", "format", "verbose"):
        _add_option(doc, option, random.Random(0))
    source = tool_source(doc, table_rows(doc, [city], world, random.Random(0)))
    subject, elevation = {doc.roles["subject"]: city.name}, city.attrs["elevation"]
    assert run_tool(sandbox, source, doc.name, **subject).text == str(elevation)
    feet = run_tool(sandbox, source, doc.name, **subject, **{doc.options["unit"]: "feet"})
    assert feet.text == str(round(elevation * 3.28084, 2))
    sentence = run_tool(sandbox, source, doc.name, **subject, **{doc.options["verbose"]: True})
    assert sentence.text == f"The elevation of {city.name} is {elevation}."
    bad = run_tool(sandbox, source, doc.name, **subject, **{doc.options["unit"]: "parsec"})
    assert "unsupported unit 'parsec'" in (bad.text if bad.ok else bad.error)


def test_computation_tools_accept_numbers_as_text_and_reject_garbage(sandbox):
    rng = random.Random(0)
    calc = broad_compute_doc("math", ["math.add", "math.divide"], rng, set())
    calc.variant = 0
    source, roles = tool_source(calc), calc.roles
    add = run_tool(
        sandbox,
        source,
        calc.name,
        **{roles["operation"]: "add", roles["a"]: "1,200", roles["b"]: 34},
    )
    assert add.text == "1234"
    div = run_tool(
        sandbox, source, calc.name, **{roles["operation"]: "divide", roles["a"]: 10, roles["b"]: 0}
    )
    assert div.text == "Error: division by zero"
    garbage = run_tool(
        sandbox, source, calc.name, **{roles["operation"]: "add", roles["a"]: "ten", roles["b"]: 1}
    )
    assert garbage.text == "Error: 'ten' is not a number"
    weekday = compute_doc("date.weekday", rng, set())
    assert (
        run_tool(
            sandbox, tool_source(weekday), weekday.name, **{weekday.roles["date"]: "2024-01-01"}
        ).text
        == "Monday"
    )


def test_call_arguments_map_roles_and_selectors():
    rng = random.Random(0)
    dates = broad_compute_doc("date", ["date.add_days", "date.days_between"], rng, set())
    args = call_arguments(dates, "date.days_between", {"start": "2020-01-01", "end": "2020-02-01"})
    assert args == {
        dates.roles["operation"]: "days_between",
        dates.roles["date"]: "2020-01-01",
        dates.roles["end"]: "2020-02-01",
    }


def test_deploy_builds_a_consistent_record(make_scene, world):
    scene = make_scene([("city.population", 0), ("city.population", 1), ("company.ceo", 0)])
    rng = random.Random(4)
    toolset = scale(
        scene,
        integrate(scene, generate_documents(scene, rng), rng),
        rng,
        ScalingConfig(distractor_rate=1.0),
    )
    candidate = deploy(scene, toolset, world, rng, "test")
    record = candidate.record
    names = {t["function"]["name"] for t in record["tools"]}
    assert names == set(record["codes"]) == {d.name for d in toolset.docs}
    assert len(record["solution"]) == 1 and len(record["solution"][0]) == 3
    assert sum(len(v) for v in record["unsolved_set"].values()) == 3
    assert candidate.intended == [[n.answer for n in scene.nodes]]
    assert [p["name"] for p in candidate.probes] == [d.name for d in toolset.docs if d.distractor]
    assert candidate.meta["distractors"] == len(candidate.probes) >= 1
