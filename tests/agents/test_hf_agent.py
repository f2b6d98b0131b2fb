"""``HFAgent`` with the default SmolLM2 model: real batched episodes, scored by the env."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_test_helpers import assert_scored_records, require

from ftrl_gym.agents.chat import render_prompt
from ftrl_gym.evaluation.harness import EvalConfig, run_evaluation
from ftrl_gym.evaluation.results import ResultStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hf_agent():
    require("torch", "transformers", "gguf")
    from ftrl_gym.agents.hf_agent import HFAgent

    agent = HFAgent(max_new_tokens=24, batch_size=2)
    yield agent
    agent.close()


def test_prompt_uses_the_model_template_and_states_the_tools(hf_agent) -> None:
    tools = [{"type": "function", "function": {"name": "get_capital", "parameters": {"type": "object"}}}]
    prompt = render_prompt(hf_agent.tokenizer, [{"role": "user", "content": "Capital of France?"}], tools)
    assert prompt.startswith("<|im_start|>system\nYou can call functions")
    assert '{"name": "get_capital", "parameters": {"type": "object"}}' in prompt
    assert prompt.endswith("<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert hf_agent.name == "hf:smollm2-135m-instruct"


def test_hf_agent_runs_real_episodes(hf_agent, tmp_path: Path) -> None:
    config = EvalConfig(["FTRL-SingleHop-v0", "FTRL-MultiHop-v0"], episodes=1, concurrency=2, max_turns=2)
    records = run_evaluation(hf_agent, config, ResultStore(tmp_path / "r.jsonl"))
    assert_scored_records(records, expected=2, max_new_tokens=24)


def test_greedy_generation_is_deterministic(hf_agent) -> None:
    request = ([{"role": "user", "content": "Name a colour."}], [])
    first, second = hf_agent.generate([request, request])
    assert first == second
    assert isinstance(first.response, str) and first.completion_tokens <= 24
