"""The LLM backend against a real vLLM server of SmolLM2 on loopback: every stage of every scenario, structured."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest

from ftrl_gym.errors import GenerationError
from ftrl_gym.generation.funnel import LLM_STAGES, Funnel
from ftrl_gym.generation.llm_backend import ChatClient, LLMConfig, generate_llm
from ftrl_gym.generation.pipeline import GenerationConfig
from ftrl_gym.generation.scenes import SCENARIOS
from ftrl_gym.generation.validation import validate

CANDIDATES = 2
"""Candidates per scenario: 8 in all, at most 40 requests."""
MAX_TOKENS = {"scene": 320, "documents": 256, "integration": 256, "scaling": 256, "deployment": 320}
"""Small bounds keep the run to a few minutes on two CPU cores; a 135M model fills every string
to its ``maxLength``, so many answers reach them (``truncated``)."""
TIME_LIMIT_S = 600
"""The run must finish within this (measured: see docs/generation.md)."""
SHAPE_REASONS = {"not_json", "missing_field", "wrong_type"}
"""Rejections that guided decoding by the stage's JSON schema rules out."""


@pytest.mark.slow
def test_every_stage_of_every_scenario_runs_with_structured_outputs(vllm_server, sandbox, tmp_path):
    llm = LLMConfig(
        model="smollm2",
        base_url=vllm_server,
        concurrency=2,
        timeout_s=120.0,
        max_tokens=MAX_TOKENS,
        max_candidates=CANDIDATES,
        cache_dir=tmp_path / "cache",
    )
    client, funnel = ChatClient(llm), Funnel()
    records, started = {}, time.monotonic()
    for scenario in SCENARIOS:
        config = GenerationConfig(scenarios=[scenario], n=1, seed=0, split="test")
        try:
            records |= generate_llm(config, llm, sandbox, client=client, funnel=funnel)[0]
        except GenerationError as exc:
            assert str(exc).startswith(f"only 0 of 1 {scenario} tasks passed in 2 candidates (")
    elapsed = time.monotonic() - started
    print(f"\n{funnel.render()}\n{client.requests} requests in {elapsed:.0f} s")

    assert elapsed < TIME_LIMIT_S
    assert client.format == "json_schema" and client.refusal is None
    counts = funnel.to_dict()["scenarios"]
    assert list(counts) == list(SCENARIOS)
    for scenario, stages in counts.items():
        assert stages["scene"]["in"] == CANDIDATES
        for before, after in pairwise(LLM_STAGES):
            assert stages[after]["in"] == stages[before]["passed"], (scenario, after)
        for stage, count in stages.items():
            rejected = sum(r["count"] for r in count["rejected"].values())
            assert count["in"] == count["passed"] + rejected, (scenario, stage)
            if stage != "validation":
                assert not SHAPE_REASONS & set(count["rejected"]), (scenario, stage, count)
            for reason in count["rejected"].values():
                assert 1 <= len(reason["examples"]) <= 3
    assert 4 * CANDIDATES <= client.requests <= 4 * CANDIDATES * len(MAX_TOKENS)
    for scenario, tasks in records.items():
        assert len(tasks) == funnel.accepted(scenario) == 1
        assert validate(tasks[0].to_dict(), sandbox).ok
