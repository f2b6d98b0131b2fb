"""Stage shapes as JSON schemas, shape checks that say what came, ``--max-tokens``, the funnel and the progress line."""

from __future__ import annotations

import io

import pytest

from ftrl_gym.generation.funnel import Funnel
from ftrl_gym.generation.llm_client import parse_max_tokens
from ftrl_gym.generation.llm_prompts import (
    MAX_TOKENS,
    SHAPES,
    BadOutput,
    Parameters,
    Text,
    check_shape,
    json_schema,
    response_format,
)
from ftrl_gym.generation.progress import Progress


def test_a_shape_becomes_the_json_schema_that_is_sent():
    shape = {"name": Text(64), "codes": {str: str}, "calls": [{"arguments": dict}, 4]}
    assert json_schema(shape) == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 64},
            "codes": {"type": "object", "additionalProperties": {"type": "string"}},
            "calls": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"arguments": {"type": "object"}},
                    "required": ["arguments"],
                    "additionalProperties": False,
                },
                "maxItems": 4,
            },
        },
        "required": ["name", "codes", "calls"],
        "additionalProperties": False,
    }


def test_every_stage_has_a_schema_and_a_token_bound():
    assert list(SHAPES) == list(MAX_TOKENS)
    scene = response_format("scene", "json_schema")
    assert scene["type"] == "json_schema" and scene["json_schema"]["name"] == "ftrl_scene"
    assert scene["json_schema"]["schema"]["properties"]["question"] == {
        "type": "string",
        "maxLength": 400,
    }
    tool = response_format("documents", "json_schema")["json_schema"]["schema"]["properties"]["tools"]
    parameters = tool["items"]["properties"]["parameters"]
    assert parameters["required"] == ["type", "properties", "required"]
    assert parameters["properties"]["properties"]["additionalProperties"] == {
        "type": "object",
        "properties": {
            "type": {"type": "string", "maxLength": 16},
            "description": {"type": "string", "maxLength": 200},
        },
        "required": ["type", "description"],
    }
    check_shape({"type": "object", "properties": {"q": {"type": "string"}}}, Parameters())
    assert response_format("scene", "json_object") == {"type": "json_object"}
    assert response_format("scene", "none") is None


@pytest.mark.parametrize(
    "value, reason, detail",
    [
        (
            {"question": "q", "sub_problems": []},
            "missing_field",
            "scene.final_answer is missing; keys were ['question', 'sub_problems']",
        ),
        (
            {"question": 7, "final_answer": "a", "sub_problems": []},
            "wrong_type",
            "scene.question must be a string, got number 7",
        ),
        (
            {"question": "q", "final_answer": "a", "sub_problems": {"id": "s1"}},
            "wrong_type",
            'scene.sub_problems must be a list, got object {"id": "s1"}',
        ),
        (
            {"question": "q", "final_answer": "a", "sub_problems": ["s1 " * 30]},
            "wrong_type",
            'scene.sub_problems[0] must be an object, got string "' + ("s1 " * 30)[:59] + "...",
        ),
    ],
)
def test_a_shape_check_names_the_path_and_what_came(value, reason, detail):
    with pytest.raises(BadOutput) as caught:
        check_shape(value, SHAPES["scene"], "scene")
    assert (caught.value.reason, caught.value.detail) == (reason, detail)


def test_a_map_shape_checks_every_value():
    check_shape({"f": "def f(): ...", "g": "def g(): ..."}, {str: str})
    with pytest.raises(BadOutput, match=r"wrong_type: codes.g must be a string, got list \[1\]"):
        check_shape({"f": "def f(): ...", "g": [1]}, {str: str}, "codes")


def test_max_tokens_takes_one_count_or_stage_pairs():
    assert parse_max_tokens("300") == dict.fromkeys(MAX_TOKENS, 300)
    assert parse_max_tokens("scene=64, deployment=4096") == MAX_TOKENS | {
        "scene": 64,
        "deployment": 4096,
    }
    with pytest.raises(ValueError, match="--max-tokens must be a positive integer, got 'many'"):
        parse_max_tokens("many")


def test_the_funnel_counts_each_candidate_up_to_the_stage_that_rejected_it():
    funnel = Funnel(examples=2)
    funnel.reject("multi_hop", "scene", "not_json", "Expecting value at char 0: 'Hi'")
    funnel.reject("multi_hop", "scene", "not_json", "Expecting value at char 0: 'Hi'")
    funnel.reject("multi_hop", "scene", "not_json", "Extra data at char 9")
    funnel.reject("multi_hop", "scene", "not_json", "Unterminated string at char 4")
    funnel.reject("multi_hop", "integration", "truncated", "max_tokens=9")
    funnel.reject("single_hop", "validation", "answers_left", "{'get_x': ['7']}")
    funnel.accept("single_hop")
    multi = funnel.to_dict()["scenarios"]["multi_hop"]
    assert [(s, c["in"], c["passed"]) for s, c in multi.items()] == [
        ("scene", 5, 1),
        ("documents", 1, 1),
        ("integration", 1, 0),
        ("scaling", 0, 0),
        ("deployment", 0, 0),
        ("validation", 0, 0),
    ]
    assert multi["scene"]["rejected"] == {
        "not_json": {
            "count": 4,
            "examples": ["Expecting value at char 0: 'Hi'", "Extra data at char 9"],
        }
    }
    total = funnel.to_dict()["total"]
    assert (total["scene"]["in"], total["validation"]["in"], total["validation"]["passed"]) == (
        7,
        2,
        1,
    )
    assert funnel.accepted("single_hop") == 1 and funnel.candidates("multi_hop") == 5
    assert funnel.one_line("multi_hop") == (
        "scene 5→1 (not_json 4), documents 1→1, integration 1→0 (truncated 1)"
    )
    assert funnel.render().splitlines()[:3] == [
        "stage           in  passed  rejected",
        "scene            7       3  not_json: 4",
        "documents        3       3  -",
    ]
    assert "accepted per scenario: multi_hop: 0, single_hop: 1" in funnel.render()


def test_off_a_terminal_progress_is_one_final_line():
    stream = io.StringIO()
    with Progress(2, "generate test", stream=stream) as progress:
        for event in ("request", "request", "rejected", "request", "accepted"):
            progress(event)
    assert stream.getvalue() == "generate test: 1/2 tasks, 2 candidates, 3 requests, 0 s\n"
