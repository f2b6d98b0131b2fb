"""Per-turn budgets: calls past ``max_calls_per_turn``, ``turn_timeout`` and ``max_output_bytes_per_turn``."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import pytest
from env_helpers import call_text

from ftrl_gym.errors import EnvConfigError


def echo_task(**codes: str) -> dict[str, Any]:
    """A task whose tools are ``codes`` plus ``echo(text)``; its one answer is ``"found it"``."""
    codes = {"echo": "def echo(text):\n    return text\n", **codes}
    return {
        "messages": [{"role": "user", "content": "Echo 'found it'."}],
        "tools": [{"type": "function", "function": {"name": name, "parameters": {}}} for name in codes],
        "codes": codes,
        "unsolved_set": {"echo": ["found it"]},
        "answer": "found it",
    }


def echo(text: str) -> dict[str, Any]:
    return {"name": "echo", "arguments": {"text": text}}


def test_calls_past_max_calls_per_turn_are_not_run_but_counted():
    env = gym.make("FTRL-Custom-v0", tasks=[echo_task()], max_calls_per_turn=2)
    env.reset()
    obs, reward, terminated, _, info = env.step(call_text([echo("a"), echo("b"), echo("found it")]))
    line = "error: call not run: this turn already made 2 calls (max_calls_per_turn=2)"
    assert [r["text"] for r in info["tool_results"]] == ["a", "b", line]
    assert info["tool_results"][2]["ok"] is False and info["tool_results"][2]["error"] == line
    assert obs.endswith(f"<tool_response>\n{line}\n</tool_response>")
    assert (reward, terminated, info["metrics"]["calls"]) == (0.0, False, 3)  # 2q/(p+1) with p=3, q=0
    _, reward, *_ = env.step(call_text([echo("found it")]))
    assert reward == 1.0
    env.close()


def test_calls_left_when_turn_timeout_is_spent_are_not_run():
    task = echo_task(spin="def spin():\n    while True:\n        pass\n")
    # budgets of seconds, not fractions: the echo call after the spins must finish within tool_timeout
    # on a loaded 2-core CI machine (a 0.5 s pool test saw an echo wait 3.6 s there)
    env = gym.make("FTRL-Custom-v0", tasks=[task], tool_timeout=2.0, turn_timeout=4.0)
    env.reset()
    spin = {"name": "spin", "arguments": {}}
    _, reward, terminated, truncated, info = env.step(call_text([spin, spin, spin, echo("found it")]))
    texts = [r["text"] for r in info["tool_results"]]
    # two calls that may each take 2 s fit in the 4 s budget and are sent together; both time out
    assert len(texts) == 4 and texts[:2] == ["error: tool 'spin' timed out after 2 s"] * 2
    for text in texts[2:]:
        assert text.startswith("error: call not run: this turn's tool calls already took ")
        assert text.endswith(" s (turn_timeout=4 s)")
    assert (reward, terminated, truncated) == (0.0, False, False)
    _, reward, *_ = env.step(call_text([echo("found it")]))
    assert reward == 1.0
    env.close()


def test_tool_output_past_max_output_bytes_per_turn_is_cut():
    env = gym.make("FTRL-Custom-v0", tasks=[echo_task()], max_output_bytes_per_turn=100)
    env.reset()
    obs, reward, _, _, info = env.step(call_text([echo("a" * 60), echo("é" * 30 + "found it"), echo("b")]))
    marker = "\n…[tool output cut: this turn's tool output reached max_output_bytes_per_turn=100 bytes]"
    hidden = "error: output not shown: this turn's tool output already reached max_output_bytes_per_turn=100 bytes"
    results = info["tool_results"]
    assert [r["text"] for r in results] == ["a" * 60, "é" * 20 + marker, hidden]  # 60 + 40 bytes shown
    assert [r["ok"] for r in results] == [True, True, False]
    assert info["messages"][-2]["content"] == "é" * 20 + marker
    assert obs.count("<tool_response>") == 3
    assert reward == 0.0  # the answer was past the budget
    _, reward, *_ = env.step(call_text([echo("found it")]))
    assert reward == 1.0
    env.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"turn_timeout": 0},
     "turn_timeout must be a positive number of seconds, got 0; e.g. gym.make(id, turn_timeout=30)"),
    ({"turn_timeout": float("inf")}, "turn_timeout must be a positive number of seconds, got inf"),
    ({"max_calls_per_turn": 0},
     "max_calls_per_turn must be a positive int, got 0; e.g. gym.make(id, max_calls_per_turn=16)"),
    ({"max_calls_per_turn": 2.5}, "max_calls_per_turn must be a positive int, got 2.5"),
    ({"max_output_bytes_per_turn": 10},
     "max_output_bytes_per_turn must be an int of at least 64 (bytes), got 10; the default is 262144"),
])
def test_bad_budgets_raise_env_config_error(kwargs, message):
    with pytest.raises(EnvConfigError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym.make("FTRL-Custom-v0", tasks=[echo_task()], **kwargs)
    assert str(info.value).startswith(message)
