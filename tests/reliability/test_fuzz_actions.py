"""Fuzzing the agent boundary: ``parse_response`` and ``env.step`` never raise on anything an agent sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest
from fuzz_strategies import (
    DeepDict,
    Opaque,
    actions,
    finite_reward,
    message_dicts,
    nested,
    tool_call_text,
)
from hypothesis import given
from hypothesis import strategies as st
from reliability_helpers import FIXTURE, examples

from ftrl_gym.envs.registration import CUSTOM_ID
from ftrl_gym.parsing import parse_response
from ftrl_gym.tasks import load_tasks

TOOL_NAMES = sorted({name for task in load_tasks(FIXTURE) for name in task.tool_names})
"""The fixture tasks' tools: get_weather, get_capital, transfer, get_balance."""

PARSE_EXAMPLES = 400
STEP_EXAMPLES = 120
"""Examples per property (times ``FTRL_FUZZ_SCALE``); each step example plays up to 3 turns."""


@pytest.fixture(scope="module")
def env() -> Iterator[gym.Env]:
    """``FTRL-Custom-v0`` over the fixture tasks (one stateful), short limits."""
    env = gym.make(CUSTOM_ID, tasks=str(FIXTURE), tool_timeout=2.0, max_turns=3)
    yield env
    env.close()


def assert_well_formed_parse(action: Any) -> None:
    """``parse_response`` returns calls the sandbox can send and a message that can be stored."""
    parsed = parse_response(action, id_prefix="call_1")
    for call in parsed.calls:
        assert isinstance(call.name, str) and call.name
        assert isinstance(call.arguments, dict)
        json.dumps(call.arguments)
    assert all(isinstance(error, str) and "\n" not in error for error in parsed.errors)
    json.dumps(parsed.message)
    assert parsed.message["role"] == "assistant"
    assert isinstance(parsed.message["content"], str)


@examples(PARSE_EXAMPLES)
@given(st.one_of(actions(TOOL_NAMES), message_dicts(TOOL_NAMES), tool_call_text(TOOL_NAMES)))
def test_parse_response_never_raises(action: Any) -> None:
    assert_well_formed_parse(action)


HOSTILE_ACTIONS = {
    "array nested 100000 deep in a block": "<tool_call>" + "[" * 100_000 + "</tool_call>",
    "object nested 5000 deep as arguments": '<tool_call>{"name": "get_weather", "arguments": {"x": '
                                            + nested(5000, "{") + "}}</tool_call>",
    "arguments string nested 100000 deep": '<tool_call>{"name": "get_weather", "arguments": "'
                                           + "[" * 100_000 + '"}</tool_call>',
    "python_tag nested 100000 deep": "<|python_tag|>" + "[" * 100_000,
    "integer of 5000 digits": '<tool_call>{"name": "get_weather", "arguments": {"city": ' + "7" * 5000
                              + "}}</tool_call>",
    "message with non-JSON arguments": {"role": "assistant", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": Opaque()}}}]},
    "message with arguments nested 3000 deep": {"role": "assistant", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": DeepDict(3000)}}]},
    "message with an integer text part": {"role": "assistant", "content": [{"type": "text", "text": 5}]},
    "message with a 5000-digit integer argument": {"role": "assistant", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": 10 ** 5000}}}]},
}
"""Actions that once made ``parse_response`` (and so ``env.step``) raise."""


@pytest.mark.parametrize("action", HOSTILE_ACTIONS.values(), ids=HOSTILE_ACTIONS.keys())
def test_hostile_action_is_scored_not_raised(env: gym.Env, action: Any) -> None:
    assert_well_formed_parse(action)
    env.reset(options={"task_index": 0})
    obs, reward, terminated, _truncated, info = env.step(action)
    assert env.observation_space.contains(obs)
    if info["tool_calls"]:
        assert not info["tool_results"][0]["ok"]
    else:
        assert (reward, terminated, info["reward_breakdown"]["branch"]) in {
            (-0.3, True, "format_error"), (-0.5, True, "empty")}


@examples(STEP_EXAMPLES)
@given(task_index=st.integers(0, 2), turns=st.lists(actions(TOOL_NAMES), min_size=1, max_size=3))
def test_step_never_raises_and_reset_always_works_after(env: gym.Env, task_index: int, turns: list[Any]) -> None:
    obs, info = env.reset(options={"task_index": task_index})
    assert env.observation_space.contains(obs)
    for action in turns:
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert finite_reward(reward) and -0.5 <= reward < 2.0
        assert type(terminated) is bool and type(truncated) is bool
        assert len(info["tool_results"]) == len(info["tool_calls"])
        for result in info["tool_results"]:
            assert result["ok"] or (result["error"].startswith("error: ") and "\n" not in result["error"])
        assert info["truncation_reason"] in (None, "max_turns", "state_lost")
        assert truncated == (info["truncation_reason"] is not None)
        json.dumps(info["messages"])
        if terminated or truncated:
            break
    obs, info = env.reset(options={"task_index": task_index})
    assert env.observation_space.contains(obs)
    assert (info["turn"], info["metrics"]["calls"], info["truncation_reason"]) == (0, 0, None)
