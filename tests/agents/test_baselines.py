"""Oracle and random baselines, the batched-call helper, and schema-valid random arguments."""

from __future__ import annotations

import json
import random
import re

import gymnasium as gym
import pytest

import ftrl_gym  # noqa: F401
from ftrl_gym.agents import Agent, AgentOutput, BaseAgent, OracleAgent, RandomAgent
from ftrl_gym.agents.base import agent_name, generate_outputs
from ftrl_gym.agents.baselines import format_tool_calls, random_value
from ftrl_gym.errors import AgentError


def test_format_tool_calls_is_hermes_json() -> None:
    text = format_tool_calls([{"name": "f", "arguments": {"x": 1}}, {"name": "g"}])
    assert text == (
        '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>'
    )


def _play(env, agent) -> dict:
    _, info = env.reset(options={"task_index": 0})
    agent.reset(env.unwrapped.task)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(agent.act(info["messages"], info["tools"]))
        done = terminated or truncated
    return info


@pytest.mark.parametrize("env_id", ["FTRL-SingleHop-v0", "FTRL-ParallelMultiHop-v0"])
def test_oracle_plays_the_solution_then_answers(env_id: str) -> None:
    env = gym.make(env_id, split="test")
    try:
        info = _play(env, OracleAgent())
        task = env.unwrapped.task
        assert info["metrics"]["solve_f1"] == 1.0
        assert info["turn"] == len(task.solution) + 1
        assert info["reward_breakdown"]["branch"] == "final_answer"
        assert task.answer in info["messages"][-1]["content"]
    finally:
        env.close()


def test_oracle_keeps_concurrent_episodes_apart() -> None:
    env = gym.make("FTRL-MultiHop-v0", split="test")
    try:
        oracle = OracleAgent()
        tasks = env.unwrapped.tasks[:2]
        for task in tasks:
            oracle.reset(task)
        first = oracle.act(list(tasks[1].messages), tasks[1].tools)
        assert first == format_tool_calls(tasks[1].solution[0])
        later = [*tasks[0].messages, {"role": "assistant", "content": "x"}, {"role": "tool", "content": "y"}]
        assert oracle.act(later, tasks[0].tools) == format_tool_calls(tasks[0].solution[1])
    finally:
        env.close()


def test_oracle_errors_are_clear() -> None:
    with pytest.raises(AgentError, match="was not reset with"):
        OracleAgent().act([{"role": "user", "content": "hi"}], [])

    class NoSolution:
        solution = None

    with pytest.raises(AgentError, match="needs tasks with a reference 'solution'"):
        OracleAgent().reset(NoSolution())


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome"]},
        "year": {"type": "integer", "minimum": 1900, "maximum": 2000},
        "ratio": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "flag": {"type": "boolean"},
    },
    "required": ["city", "year", "tags"],
}}}]


def test_random_agent_calls_schema_valid_arguments() -> None:
    agent = RandomAgent(seed=3, answer_prob=0.0, max_calls=3)
    for _ in range(50):
        text = agent.act([{"role": "user", "content": "q"}], TOOLS)
        bodies = re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text)
        assert 1 <= len(bodies) <= 3
        for body in bodies:
            call = json.loads(body)
            args = call["arguments"]
            assert call["name"] == "lookup"
            assert args["city"] in ("Paris", "Rome")
            assert isinstance(args["year"], int) and 1900 <= args["year"] <= 2000
            assert len(args["tags"]) >= 1 and all(isinstance(t, str) for t in args["tags"])
            assert set(args) <= {"city", "year", "ratio", "tags", "flag"}


def test_random_agent_is_reproducible_by_seed_and_stops() -> None:
    messages = [{"role": "user", "content": "q"}]
    a, b, c = RandomAgent(seed=5), RandomAgent(seed=5), RandomAgent(seed=6)
    seq_a = [a.act(messages, TOOLS) for _ in range(20)]
    assert seq_a == [b.act(messages, TOOLS) for _ in range(20)]
    assert seq_a != [c.act(messages, TOOLS) for _ in range(20)]
    assert "I cannot find the answer." in seq_a
    assert RandomAgent(seed=0, answer_prob=1.0).act(messages, TOOLS) == "I cannot find the answer."
    with pytest.raises(ValueError, match="answer_prob must be in"):
        RandomAgent(answer_prob=2.0)


def test_random_value_handles_unions_consts_and_nesting() -> None:
    rng = random.Random(0)
    assert random_value({"const": 7}, rng) == 7
    assert random_value({"anyOf": [{"type": "null"}]}, rng) is None
    nested = random_value({"type": "object", "properties": {"inner": {"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 5, "maximum": 5}}, "required": ["n"]}}, "required": ["inner"]}, rng)
    assert nested == {"inner": {"n": 5}}


def test_generate_outputs_accepts_every_agent_form() -> None:
    class ActOnly:
        def act(self, messages, tools):
            return "a"

    class BatchOnly:
        name = "batcher"

        def act_batch(self, requests):
            return [{"role": "assistant", "content": str(i)} for i, _ in enumerate(requests)]

    class Counted(BaseAgent):
        def generate(self, requests):
            return [AgentOutput("c", 3, 4) for _ in requests]

    requests = [([{"role": "user", "content": "q"}], [])] * 2
    assert generate_outputs(ActOnly(), requests) == [AgentOutput("a")] * 2
    assert [o.response["content"] for o in generate_outputs(BatchOnly(), requests)] == ["0", "1"]
    assert generate_outputs(Counted(), requests) == [AgentOutput("c", 3, 4)] * 2
    assert Counted().act([], []) == "c"
    assert isinstance(ActOnly(), Agent)
    assert agent_name(ActOnly()) == "ActOnly" and agent_name(BatchOnly()) == "batcher"
    with pytest.raises(TypeError, match="is not an agent"):
        generate_outputs(object(), requests)
    with pytest.raises(NotImplementedError, match="must override act or generate"):
        BaseAgent().act([], [])
