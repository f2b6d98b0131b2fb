"""Hostile agent actions through ``env.step``: each is scored (−0.3 for a format error), never raised."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from env_helpers import FIXTURE, call_text

from ftrl_gym.parsing import MAX_ARGUMENTS_LENGTH, MAX_JSON_DEPTH, MAX_NAME_LENGTH

WEATHER_TASK = 0


def nested_dict(depth: int) -> dict[str, Any]:
    """``{"a": {"a": ... {}}}``, ``depth`` levels deep."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def self_containing(times: int) -> dict[str, Any]:
    """A dict that holds itself ``times`` times (a walk that never stops visits ``times**depth`` dicts)."""
    value: dict[str, Any] = {"city": "Paris"}
    for i in range(times):
        value[f"self{i}"] = value
    return value


def shared_list(times: int) -> dict[str, Any]:
    """Arguments that hold one list 2**``times`` times over once written out (never deeper than ``times``)."""
    value: list[Any] = []
    for _ in range(times):
        value = [value, value]
    return {"city": value}


class Raises:
    """An object every dunder of which raises."""

    def __str__(self) -> str:
        raise RuntimeError("__str__")

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__")

    def __hash__(self) -> int:
        raise RuntimeError("__hash__")

    def __bool__(self) -> bool:
        raise RuntimeError("__bool__")


class HostileDict(dict):
    """A dict whose reading methods raise (it looks like a message or an arguments object)."""

    def get(self, *args: Any) -> Any:
        raise RuntimeError("get")

    def items(self) -> Any:
        raise RuntimeError("items")

    def keys(self) -> Any:
        raise RuntimeError("keys")

    def __iter__(self) -> Any:
        raise RuntimeError("__iter__")


class HostileStr(str):
    """A str whose comparison and hashing raise (a tool name the reward would look up)."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__")

    def __hash__(self) -> int:
        raise RuntimeError("__hash__")

    def strip(self, *args: Any) -> str:
        raise RuntimeError("strip")


class HostileList(list):
    """A list whose ``len`` and iteration raise."""

    def __len__(self) -> int:
        raise RuntimeError("__len__")

    def __iter__(self) -> Any:
        raise RuntimeError("__iter__")


def message(function: Any = None, **fields: Any) -> dict[str, Any]:
    """An assistant message with one ``tool_calls`` entry holding ``function`` (or the given fields)."""
    if function is not None:
        fields.setdefault("tool_calls", [{"type": "function", "function": function}])
    return {"role": "assistant", "content": None, **fields}


def weather(arguments: Any) -> dict[str, Any]:
    return message({"name": "get_weather", "arguments": arguments})


HOSTILE = [
    ("arguments nested 65 deep", weather(nested_dict(MAX_JSON_DEPTH + 1)),
     f"arguments are nested more than {MAX_JSON_DEPTH} levels deep"),
    ("arguments nested 100000 deep", weather(nested_dict(100_000)),
     f"arguments are nested more than {MAX_JSON_DEPTH} levels deep"),
    ("arguments containing themselves", weather(self_containing(1)),
     f"arguments are nested more than {MAX_JSON_DEPTH} levels deep"),
    ("arguments containing themselves twice", weather(self_containing(2)),
     f"arguments hold more than {MAX_ARGUMENTS_LENGTH // 2} values"),
    ("arguments sharing a list 2**60 times", weather(shared_list(60)),
     f"arguments hold more than {MAX_ARGUMENTS_LENGTH // 2} values, so more than {MAX_ARGUMENTS_LENGTH} characters"),
    ("huge arguments", weather({"city": "x" * 5_000_000}),
     f"arguments are 5000012 characters of JSON, more than {MAX_ARGUMENTS_LENGTH}"),
    ("huge arguments string", weather('{"city": "' + "x" * 300_000 + '"}'),
     f"arguments are 300012 characters of JSON, more than {MAX_ARGUMENTS_LENGTH}"),
    ("non-JSON arguments", weather({"city": {1, 2}}), "arguments are not JSON-serialisable (TypeError)"),
    ("arguments whose items() raise", weather(HostileDict(city="Paris")),
     "arguments are not JSON-serialisable (RuntimeError)"),
    ("arguments that are a list", weather(["Paris"]), "arguments must be a JSON object, got list"),
    ("arguments that are an int", weather(7), "arguments must be a JSON object, got int"),
    ("name that is not a str", message({"name": 7, "arguments": {}}), "the call has no string 'name'"),
    ("name object that raises", message({"name": Raises(), "arguments": {}}), "the call has no string 'name'"),
    ("enormous name", message({"name": "n" * 1_000_000, "arguments": {}}),
     f"the tool name is 1000000 characters long; a name has at most {MAX_NAME_LENGTH}"),
    ("tool_calls a dict", message(tool_calls={"function": {"name": "get_weather", "arguments": {}}}),
     "tool_calls must be a list of {'function': {'name', 'arguments'}} entries, got dict"),
    ("tool_calls a string", message(tool_calls="get_weather(Paris)"),
     "tool_calls must be a list of {'function': {'name', 'arguments'}} entries, got str"),
    ("tool_calls a numpy array", message(tool_calls=np.array([1, 2])),
     "tool_calls must be a list of {'function': {'name', 'arguments'}} entries, got ndarray"),
    ("tool_calls whose bool raises", message(tool_calls=Raises()),
     "tool_calls must be a list of {'function': {'name', 'arguments'}} entries, got Raises"),
    ("tool_calls whose len raises", message(tool_calls=HostileList([1])),
     "the action could not be read (RuntimeError raised while reading a dict)"),
    ("entry that is not an object", message(tool_calls=[Raises()]),
     "tool_calls[0]: expected {'function': {'name', 'arguments'}}"),
    ("message whose get raises", HostileDict(role="assistant", tool_calls=[]),
     "the action could not be read (RuntimeError raised while reading a HostileDict)"),
    ("function whose keys raise", message(HostileDict(name="get_weather")),
     "the action could not be read (RuntimeError raised while reading a dict)"),
]
"""(label, action, the parse error explaining it): every one is a format error."""


@pytest.fixture(scope="module")
def env():
    env = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE))
    yield env
    env.close()


@pytest.mark.parametrize(("label", "action", "error"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_action_is_a_format_error_and_the_env_goes_on(env, label, action, error):
    env.reset(options={"task_index": WEATHER_TASK})
    obs, reward, terminated, truncated, info = env.step(action)
    assert (reward, terminated, truncated) == (-0.3, True, False)
    assert info["reward_breakdown"]["branch"] == "format_error"
    assert info["tool_calls"] == []
    assert error in info["parse_errors"][0], info["parse_errors"]
    assert obs.startswith("Episode over: no tool call was made; the response has tool-call syntax")
    assert env.observation_space.contains(obs)
    env.reset(options={"task_index": WEATHER_TASK})
    _, reward, *_ = env.step(call_text([{"name": "get_weather", "arguments": {"city": "Paris"}}]))
    assert reward == 1.0


def test_hostile_name_and_id_are_replaced_by_plain_strings(env):
    env.reset(options={"task_index": WEATHER_TASK})
    action = message(tool_calls=[{"id": HostileStr("abc"), "function": {"name": HostileStr("get_weather"),
                                                                         "arguments": {"city": "Paris"}}}])
    _, reward, terminated, _, info = env.step(action)
    assert (reward, terminated) == (1.0, False)
    call = info["tool_calls"][0]
    assert (type(call["id"]), type(call["name"])) == (str, str)
    assert (call["id"], call["name"]) == ("abc", "get_weather")
    _, reward, terminated, _, _ = env.step(HostileStr("The weather is Sunny, 21."))
    assert (reward, terminated) == (1.0, True)


@pytest.mark.parametrize(("label", "action", "explanation"), [
    ("20000 unclosed tags", "<tool_call>" * 20_000, "without its matching closing or opening tag"),
    ("200000 end markers", "x" + "<|im_end|>" * 200_000, "neither calls a tool nor states"),
    ("arguments string nested 65 deep", '<tool_call>{"name": "get_weather", "arguments": "'
     + "[" * 65 + "]" * 65 + '"}</tool_call>', "arguments must be a JSON object, got list"),
    ("arguments nested 65 deep", '<tool_call>{"name": "get_weather", "arguments": '
     + '{"a": ' * 65 + "1" + "}" * 65 + "}</tool_call>", "arguments are nested more than 64 levels deep"),
])
def test_hostile_text_is_scored_in_linear_time(env, label, action, explanation):
    env.reset(options={"task_index": WEATHER_TASK})
    obs, reward, terminated, _, _ = env.step(action)
    assert terminated and reward in (-0.3, 0.0)
    assert explanation in obs
