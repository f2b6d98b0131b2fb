"""The LLM backend against a real chat-completions server on loopback (scripted answers, real client)."""

from __future__ import annotations

import json

import pytest
from scripted_llm import CODE, DECOY, GOOD, good

from ftrl_gym.errors import GenerationError
from ftrl_gym.generation.funnel import Funnel
from ftrl_gym.generation.llm_backend import ChatClient, LLMConfig, generate_llm
from ftrl_gym.generation.pipeline import GenerationConfig


def run(server, tmp_path, sandbox, n=1, cache=True, concurrency=2, funnel=None, **limits):
    llm = LLMConfig(
        model="scripted",
        base_url=server.url,
        api_key="k",
        concurrency=concurrency,
        backoff_s=0.01,
        cache_dir=tmp_path / "cache" if cache else None,
        **limits,
    )
    client = ChatClient(llm)
    config = GenerationConfig(scenarios=["single_hop"], n=n, split="test")
    records, summary = generate_llm(config, llm, sandbox, client=client, funnel=funnel)
    return records["single_hop"], summary, client


def test_scripted_stages_make_a_valid_task_through_the_real_client(serve, tmp_path, sandbox):
    server = serve(good)
    (task,), summary, client = run(server, tmp_path, sandbox, concurrency=1)
    assert task.tool_names == ["get_capital", "get_anthem"] and task.unsolved_set == {
        "get_capital": ["Quorvis"]
    }
    assert task.answer == "Quorvis" and task.data_source == "ftrl_gym.generation/openai:scripted"
    assert server.requests == client.requests == 5
    schema = server.bodies[0]["response_format"]
    assert schema["type"] == "json_schema" and schema["json_schema"]["name"] == "ftrl_scene"
    assert schema["json_schema"]["schema"]["required"] == ["question", "final_answer", "sub_problems"]
    assert [b["max_tokens"] for b in server.bodies] == [512, 1024, 1024, 1536, 2048]
    assert (
        server.bodies[0]["model"] == "scripted"
        and "STAGE 1" in server.bodies[0]["messages"][0]["content"]
    )
    assert summary.to_dict()["accepted"] == {"single_hop": 1} and summary.to_dict()[
        "distractors"
    ] == {"1": 1}


def test_a_server_error_is_retried(serve, tmp_path, sandbox):
    server = serve(lambda stage, n, _: (500, "") if n == 1 else good(stage))
    (task,), summary, client = run(server, tmp_path, sandbox, concurrency=1)
    assert server.requests == client.requests == 6 and task.answer == "Quorvis"
    assert summary.to_dict()["rejected"] == {}


def test_an_endpoint_that_keeps_failing_is_a_generation_error(serve, tmp_path, sandbox):
    server = serve(lambda stage, n, _: (503, ""))
    with pytest.raises(GenerationError, match="failed 4 times"):
        run(server, tmp_path, sandbox, concurrency=1)
    assert server.requests == 4


@pytest.mark.parametrize(
    "stage, content, where, reason",
    [
        ("scene", "Sure! The capital is Quorvis.", "scene", "not_json"),
        ("scene", json.dumps({"question": "q", "final_answer": "a"}), "scene", "missing_field"),
        ("documents", json.dumps({"tools": "get_capital"}), "documents", "wrong_type"),
        (
            "deployment",
            json.dumps(
                GOOD["deployment"]
                | {"codes": {"get_capital": CODE.replace("Quorvis", "Zed"), "get_anthem": DECOY}}
            ),
            "validation",
            "unmatched_answer",
        ),
        (
            "deployment",
            json.dumps(
                GOOD["deployment"]
                | {
                    "codes": {
                        "get_capital": CODE,
                        "get_anthem": "def get_anthem(country):\n    return 'Quorvis'\n",
                    }
                }
            ),
            "validation",
            "distractor_yields_answer",
        ),
    ],
)
def test_bad_output_is_rejected_with_its_stage_and_reason_and_never_emitted(
    serve, tmp_path, sandbox, stage, content, where, reason
):
    server = serve(lambda s, n, _: (200, content) if s == stage else good(s))
    with pytest.raises(GenerationError, match="only 0 of 1 single_hop tasks passed in 2 candidates"):
        run(server, tmp_path, sandbox, max_candidates=2)
    funnel = Funnel()
    with pytest.raises(GenerationError, match=f"{where} 2→0 \\({reason} 2\\)"):
        run(server, tmp_path, sandbox, max_candidates=2, cache=False, funnel=funnel)
    counts = funnel.to_dict()["scenarios"]["single_hop"]
    assert counts["scene"]["in"] == 2 and counts[where] == {
        "in": 2,
        "passed": 0,
        "rejected": {reason: {"count": 2, "examples": counts[where]["rejected"][reason]["examples"]}},
    }
    assert 1 <= len(counts[where]["rejected"][reason]["examples"]) <= 2


def test_the_cache_replays_a_run_without_requests(serve, tmp_path, sandbox):
    """Two candidates: different scenes, but the same later prompts, which the cache answers once."""
    server = serve(good)
    first, _, _ = run(server, tmp_path, sandbox, n=2, concurrency=1)
    before = server.requests
    second, _, client = run(server, tmp_path, sandbox, n=2, concurrency=1)
    assert client.requests == 0 and server.requests == before == 6
    assert [t.to_dict() for t in first] == [t.to_dict() for t in second]
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 6


def test_the_command_line_drives_the_openai_backend(serve, tmp_path, capsys):
    from ftrl_gym.cli import main
    from ftrl_gym.tasks import load_tasks

    server = serve(good)
    argv = [
        "generate",
        "--backend",
        "openai",
        "--base-url",
        server.url,
        "--model",
        "scripted",
        "--scenario",
        "single_hop",
        "--n",
        "1",
        "--split",
        "test",
        "--out",
        str(tmp_path),
        "--concurrency",
        "1",
    ]
    assert main(argv) == 0
    (task,) = load_tasks(tmp_path / "single_hop" / "test.jsonl")
    assert task.answer == "Quorvis" and server.requests == 5
    assert "accepted             single_hop: 1" in capsys.readouterr().out
    assert len(list((tmp_path / ".llm_cache").rglob("*.json"))) == 5


def test_concurrency_is_bounded_and_output_keeps_candidate_order(serve, tmp_path, sandbox):
    def numbered(stage: str, attempt: int, message: dict) -> tuple[int, str]:
        if stage != "scene":
            return good(stage)
        scene = json.loads(json.dumps(GOOD["scene"]))
        scene["question"] = f"What is the capital of Veltrana? (candidate {message['candidate']})"
        return 200, json.dumps(scene)

    server = serve(numbered, delay_s=0.05)
    tasks, _, _ = run(server, tmp_path, sandbox, n=4, concurrency=2)
    assert server.max_in_flight == 2
    questions = [t.messages[0]["content"] for t in tasks]
    assert questions == [
        f"What is the capital of Veltrana? (candidate 0:test:{i})" for i in range(4)
    ]
    replay, _, client = run(server, tmp_path, sandbox, n=4, concurrency=2)
    assert client.requests == 0
    assert [t.messages for t in replay] == [t.messages for t in tasks]
