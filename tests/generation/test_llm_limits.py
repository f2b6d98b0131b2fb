"""The LLM backend's schemas, request bounds and failures against a scripted server on loopback (real client)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from scripted_llm import GOOD, good

from ftrl_gym.cli import main
from ftrl_gym.generation.funnel import Funnel
from ftrl_gym.generation.llm_backend import ChatClient, LLMConfig, generate_llm
from ftrl_gym.generation.pipeline import GenerationConfig


def _config(server, tmp_path, **limits) -> LLMConfig:
    return LLMConfig(
        model="scripted",
        base_url=server.url,
        api_key="k",
        concurrency=1,
        backoff_s=0.01,
        cache_dir=tmp_path / "cache",
        **limits,
    )


def _generate(llm: LLMConfig, sandbox, funnel: Funnel | None = None):
    client = ChatClient(llm)
    config = GenerationConfig(scenarios=["single_hop"], n=1, split="test")
    records, _ = generate_llm(config, llm, sandbox, client=client, funnel=funnel)
    return records["single_hop"], client


def _cli(url: str, out, *options: str) -> list[str]:
    return [
        "generate", "--backend", "openai", "--base-url", url, "--model", "scripted",
        "--scenario", "single_hop", "--n", "1", "--split", "test", "--out", str(out),
        "--concurrency", "1", *options,
    ]  # fmt: skip


def test_a_server_that_refuses_json_schema_is_asked_for_json_object(serve, tmp_path, sandbox):
    server = serve(good, refuse_schema=True)
    (task,), client = _generate(_config(server, tmp_path), sandbox)
    assert task.answer == "Quorvis"
    assert client.format == "json_object" and client.refusal == (
        "(400) Error code: 400 - response_format json_schema is not supported"
    )
    formats = [body["response_format"]["type"] for body in server.bodies]
    assert formats == [
        "json_schema",
        "json_object",
        "json_object",
        "json_object",
        "json_object",
        "json_object",
    ]
    replay, client = _generate(_config(server, tmp_path), sandbox)
    assert client.requests == 0 and replay[0].to_dict() == task.to_dict()


def test_an_answer_cut_off_at_max_tokens_is_rejected_as_truncated(serve, tmp_path, sandbox):
    def cut(stage: str, attempt: int, message: dict) -> tuple:
        return (
            (200, '{"tools": [{"name": "get_cap', "length") if stage == "scaling" else good(stage)
        )

    server = serve(cut)
    funnel = Funnel()
    llm = _config(server, tmp_path, max_tokens={s: 50 for s in GOOD}, max_candidates=2)
    with pytest.raises(Exception, match="only 0 of 1 single_hop tasks passed in 2 candidates"):
        _generate(llm, sandbox, funnel)
    scaling = funnel.to_dict()["scenarios"]["single_hop"]["scaling"]
    assert scaling == {
        "in": 2,
        "passed": 0,
        "rejected": {
            "truncated": {
                "count": 2,
                "examples": [
                    (
                        "the answer reached max_tokens=50 after 28 characters, ending "
                        '\'{"tools": [{"name": "get_cap\'; raise --max-tokens scaling=N'
                    )
                ],
            }
        },
    }
    assert [body["max_tokens"] for body in server.bodies] == [50] * 5


def test_a_request_past_its_timeout_rejects_its_candidate_and_is_not_retried(
    serve, tmp_path, sandbox
):
    server = serve(good, delay_s=10.0)  # two answers waited out would take 20 s
    funnel = Funnel()
    llm = _config(server, tmp_path, timeout_s=0.3, max_candidates=2)
    started = time.monotonic()
    with pytest.raises(Exception, match=r"scene 2→0 \(timeout 2\)"):
        _generate(llm, sandbox, funnel)
    assert time.monotonic() - started < 10 and server.requests == 2
    assert funnel.to_dict()["total"]["scene"]["rejected"] == {
        "timeout": {"count": 2, "examples": ["no answer in 0.3 s"]}
    }


def test_a_wrong_model_is_one_line_naming_the_served_models(serve, tmp_path, capsys):
    server = serve(good, models=("smollm2", "qwen"))
    assert main(_cli(server.url, tmp_path)) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == (
        f"ftrl-gym generate: error: model 'scripted' is not served at {server.url}; it serves: qwen, smollm2"
    )
    assert "stage           in  passed  rejected" in captured.out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed" and report["error"].startswith("model 'scripted' is not")
    assert not (tmp_path / "single_hop").exists()


def test_an_unreachable_server_is_one_line_after_the_retries(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    started = time.monotonic()
    assert main(_cli(url, tmp_path, "--retries", "1")) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"ftrl-gym generate: error: {url} failed 2 times; last error: Connection error."
    assert not any("Traceback" in line for line in err), "\n".join(err)


def test_a_server_that_vanishes_mid_run_stops_the_run_in_seconds(serve, tmp_path, capsys):
    def vanish(stage: str, attempt: int, message: dict) -> tuple:
        if attempt == 3:
            threading.Thread(target=server.close).start()
        return good(stage)

    server = serve(vanish)
    started = time.monotonic()
    assert main(_cli(server.url, tmp_path, "--retries", "2", "--concurrency", "2")) == 2
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err.splitlines()
    assert (
        err[-1] == f"ftrl-gym generate: error: {server.url} failed 3 times; last error: Connection error."
    )
    report = json.loads((tmp_path / "report.json").read_text())
    # 3 answered, at most 2 more answered while the server shuts down, then 2 chains x 3 attempts
    assert report["status"] == "failed" and 3 <= report["requests"] <= 3 + 2 + 2 * 3


def test_nothing_accepted_prints_the_funnel_and_fails_in_one_line(serve, tmp_path, capsys):
    server = serve(lambda stage, attempt, message: (200, "Sure! Here it is."))
    assert main(_cli(server.url, tmp_path, "--max-candidates", "2")) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == (
        "ftrl-gym generate: error: only 0 of 1 single_hop tasks passed in 2 candidates (scene 2→0 (not_json 2))"
    )
    assert "scene            2       0  not_json: 2" in captured.out
    assert "  scene not_json: Expecting value at char 0: 'Sure! Here it is.'" in captured.out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["funnel"]["total"]["scene"]["rejected"]["not_json"]["count"] == 2
    assert report["requests"] == 2 and report["response_format"] == "json_schema"
    assert not (tmp_path / "single_hop").exists()


def test_options_reach_every_request(serve, tmp_path, capsys):
    server = serve(good)
    options = ["--max-tokens", "scene=64,deployment=900", "--response-format", "json_object"]
    assert main(_cli(server.url, tmp_path, *options)) == 0
    assert [body["max_tokens"] for body in server.bodies] == [64, 1024, 1024, 1536, 900]
    assert {json.dumps(body["response_format"]) for body in server.bodies} == {
        '{"type": "json_object"}'
    }
    out = capsys.readouterr().out
    assert "validation       1       1  -" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "ok" and report["limits"]["max_tokens"]["deployment"] == 900
    assert report["funnel"]["scenarios"]["single_hop"]["validation"] == {
        "in": 1,
        "passed": 1,
        "rejected": {},
    }
