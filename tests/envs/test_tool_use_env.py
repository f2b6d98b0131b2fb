"""ToolUseEnv behaviour: reference solutions, garbage actions, state, truncation, kwargs and sharing."""

from __future__ import annotations

import json
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from env_helpers import FIXTURE, call_text
from gymnasium.error import ResetNeeded

from ftrl_gym.envs.spaces import LLMText
from ftrl_gym.envs.tool_use_env import ToolUseEnv
from ftrl_gym.errors import EnvConfigError
from ftrl_gym.sandbox import Sandbox
from ftrl_gym.tasks import load_tasks

WEATHER_TASK = 0  # fixture: weather in Paris, one answer
CAPITAL_WEATHER_TASK = 1  # fixture: capital of Norway, then its weather
BANK_TASK = 2  # fixture: stateful transfer, then balance


def play_solution(env, index, as_messages=False):
    """Step a task's reference solution and final answer; return the per-turn rewards and last step."""
    env.reset(options={"task_index": index})
    task = env.unwrapped.task
    rewards = []
    for turn in task.solution:
        if as_messages:
            action = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                    for c in turn
                ],
            }
        else:
            action = call_text(turn)
        obs, reward, terminated, truncated, _info = env.step(action)
        assert (terminated, truncated) == (False, False)
        assert obs.count("<tool_response>") == len(turn)
        rewards.append(reward)
    last = env.step(f"The answer is {task.answer}.<|im_end|>")
    rewards.append(last[1])
    return rewards, last


def test_every_shipped_test_task_reference_solution_scores_f1_one():
    env = gym.make("FTRL-Mixed-v0", split="test")
    for index, task in enumerate(env.unwrapped.tasks):
        rewards, (obs, _, terminated, truncated, info) = play_solution(env, index)
        expected = [2 * len(turn) / (len(turn) + 1) for turn in task.solution] + [1.0]
        assert rewards == pytest.approx(expected), task.messages[0]["content"]
        assert (terminated, truncated) == (True, False)
        assert info["metrics"]["solve_f1"] == 1.0
        assert info["metrics"]["calls"] == info["metrics"]["solved"] == task.total_answers
        assert info["reward_breakdown"]["branch"] == "final_answer"
        assert "final answer appears" in obs
    env.close()


def test_reference_solution_as_openai_messages(custom_env):
    rewards, (_, _, _, _, info) = play_solution(custom_env, CAPITAL_WEATHER_TASK, as_messages=True)
    assert rewards == [1.0, 1.0, 1.0]
    assert info["metrics"] == {
        "solve_p": 1.0, "solve_r": 1.0, "solve_f1": 1.0, "calls": 2, "solved": 2, "total_answers": 2,
    }
    roles = [m["role"] for m in info["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert info["messages"][2] == {
        "role": "tool", "tool_call_id": "call_1_0", "name": "get_capital", "content": "Oslo",
    }


def test_reset_observation_info_and_metrics(custom_env):
    obs, info = custom_env.reset(seed=0, options={"task_index": CAPITAL_WEATHER_TASK})
    assert obs == "What is the weather in the capital of Norway?"
    assert info["task_index"] == CAPITAL_WEATHER_TASK and info["turn"] == 0
    assert [t["function"]["name"] for t in info["tools"]] == ["get_weather", "get_capital"]
    assert info["metrics"] == {
        "solve_p": 1.0, "solve_r": 0.0, "solve_f1": 0.0, "calls": 0, "solved": 0, "total_answers": 2,
    }
    assert (info["tool_calls"], info["reward_breakdown"], info["answers_left"]) == ([], {}, 2)


def test_partial_turn_counts_wrong_and_right_calls(custom_env):
    custom_env.reset(options={"task_index": CAPITAL_WEATHER_TASK})
    action = call_text([
        {"name": "get_capital", "arguments": {"country": "Peru"}},
        {"name": "get_capital", "arguments": {"country": "Norway"}},
        {"name": "get_capital", "arguments": {"country": "Norway"}},
    ])
    obs, reward, terminated, _, info = custom_env.step(action)
    assert reward == pytest.approx(2 * 1 / 4)
    assert obs == "<tool_response>\nLima\n</tool_response>\n<tool_response>\nOslo\n</tool_response>\n<tool_response>\nOslo\n</tool_response>"
    assert info["reward_breakdown"]["solved"] == [["get_capital", "Oslo"]]
    assert info["metrics"]["solve_p"] == pytest.approx(1 / 3)
    assert info["metrics"]["solve_f1"] == pytest.approx(2 * 1 / (3 + 2))
    # an early correct final answer with one answer still missing scores 1 / (1 + t)
    _, reward, terminated, _, _ = custom_env.step("It is snowing in Oslo.")
    assert (reward, terminated) == (pytest.approx(1 / 2), True)


def test_all_solved_without_answer_scores_half(custom_env):
    custom_env.reset(options={"task_index": WEATHER_TASK})
    custom_env.step(call_text([{"name": "get_weather", "arguments": {"city": "Paris"}}]))
    _, reward, terminated, _, info = custom_env.step("Done.")
    assert (reward, terminated, info["reward_breakdown"]["branch"]) == (0.5, True, "all_solved")


GARBAGE = [
    ("random unicode", LLMText(1000, seed=1).sample(), 0.0, "neither calls a tool nor states"),
    ("huge string", "ÿ" * 1_000_000, 0.0, "neither calls a tool nor states"),
    ("empty", "   <|im_end|>", -0.5, "the response is empty"),
    ("JSON that is not an object", "<tool_call>[1, 2]</tool_call>", -0.3, "must be a JSON object"),
    ("broken JSON", '<tool_call>{"name": "get_weather", </tool_call>', -0.3, "invalid JSON"),
    ("unclosed tag", '<tool_call>{"name": "get_weather"}', -0.3, "without its matching"),
    ("non-text action", 12345, -0.5, "the response is empty"),
    ("malformed message", {"role": "assistant", "tool_calls": [{"function": {}}]}, -0.3, "no string 'name'"),
]


@pytest.mark.parametrize(("label", "action", "reward", "explanation"), GARBAGE, ids=[g[0] for g in GARBAGE])
def test_garbage_without_calls_is_scored_and_explained(custom_env, label, action, reward, explanation):
    custom_env.reset(seed=0, options={"task_index": WEATHER_TASK})
    obs, got, terminated, truncated, _info = custom_env.step(action)
    assert (got, terminated, truncated) == (reward, True, False)
    assert obs.startswith("Episode over: no tool call was made")
    assert explanation in obs
    assert custom_env.observation_space.contains(obs)
    assert custom_env.reset(options={"task_index": WEATHER_TASK})[0] == "What is the weather in Paris right now?"


BAD_CALLS = [
    ("extra argument", {"name": "get_weather", "arguments": {"city": "Paris", "units": "F"}},
     "error: bad arguments for tool 'get_weather': got an unexpected keyword argument 'units'"),
    ("missing argument", {"name": "get_weather", "arguments": {}},
     "error: bad arguments for tool 'get_weather': missing 1 required positional argument: 'city'"),
    ("unknown tool", {"name": "get_x", "arguments": {"q": 1}}, "error: unknown tool 'get_x'; available: get_weather"),
    ("wrong argument type", {"name": "get_weather", "arguments": {"city": 7}}, "error: tool 'get_weather' raised AttributeError"),
]


@pytest.mark.parametrize(("label", "call", "message"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_calls_return_the_error_as_a_tool_response(custom_env, label, call, message):
    custom_env.reset(options={"task_index": WEATHER_TASK})
    obs, reward, terminated, truncated, info = custom_env.step(call_text([call]))
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert obs.startswith("<tool_response>\n" + message)
    assert info["tool_results"][0]["ok"] is False
    assert info["tool_results"][0]["error"].startswith(message)
    assert info["metrics"]["calls"] == 1
    _, reward, *_ = custom_env.step(call_text([{"name": "get_weather", "arguments": {"city": "Paris"}}]))
    assert reward == 1.0


def test_unparsable_block_beside_a_call_is_reported_in_info(custom_env):
    custom_env.reset(options={"task_index": WEATHER_TASK})
    action = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call><tool_call>nope</tool_call>'
    _, reward, terminated, _, info = custom_env.step(action)
    assert (reward, terminated) == (1.0, False)
    assert info["parse_errors"] == ["<tool_call> block 2: invalid JSON (Expecting value at char 0)"]


def test_stateful_task_mutates_its_own_state_only(custom_env):
    custom_env.reset(options={"task_index": BANK_TASK})
    assert custom_env.unwrapped.get_state() == {"accounts": {"checking": 100.0, "savings": 100.0}}
    custom_env.step(call_text(custom_env.unwrapped.task.solution[0]))
    assert custom_env.unwrapped.get_state() == {"accounts": {"checking": 60.0, "savings": 140.0}}
    assert custom_env.unwrapped.task.state == {"accounts": {"checking": 100.0, "savings": 100.0}}
    clone = pickle.loads(pickle.dumps(custom_env))
    assert clone.unwrapped.get_state() == {"accounts": {"checking": 60.0, "savings": 140.0}}
    obs, reward, *_ = clone.step(call_text(custom_env.unwrapped.task.solution[1]))
    assert (obs, reward) == ("<tool_response>\nsavings balance: 140.00\n</tool_response>", 1.0)
    clone.close()
    custom_env.reset(options={"task_index": BANK_TASK})
    assert custom_env.unwrapped.get_state()["accounts"]["checking"] == 100.0
    custom_env.reset(options={"task_index": WEATHER_TASK})
    assert custom_env.unwrapped.get_state() is None


def test_max_turns_truncates_and_step_after_the_end_needs_reset(custom_env):
    env = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE), max_turns=2)
    env.reset(options={"task_index": WEATHER_TASK})
    call = call_text([{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    assert env.step(call)[2:4] == (False, False)
    _, _, terminated, truncated, info = env.step(call)
    assert (terminated, truncated, info["truncation_reason"]) == (False, True, "max_turns")
    with pytest.raises(ResetNeeded, match="call env.reset"):
        env.step(call)
    env.close()


def test_lost_world_state_truncates_the_episode(tmp_path):
    task = load_tasks(FIXTURE)[BANK_TASK].to_dict(json_strings=False)
    task["codes"]["transfer"] = "def transfer(from_account, to_account, amount, data):\n    while True:\n        pass\n"
    env = ToolUseEnv([task], tool_timeout=0.5)
    env.reset()
    obs, reward, terminated, truncated, info = env.step(call_text(task["solution"][0]))
    assert (reward, terminated, truncated, info["truncation_reason"]) == (0.0, False, True, "state_lost")
    assert "timed out after 0.5 s" in obs
    env.reset()
    assert env.get_state() == task["state"]
    env.close()


@pytest.mark.parametrize(
    ("variant", "expected"), [("solve_f1", 2 / 3), ("solve_p", 1 / 2), ("solve_r", 1.0), ("solve_pr", 1 / 2)]
)
def test_reward_variant_is_selectable(variant, expected):
    env = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE), reward=variant)
    env.reset(options={"task_index": WEATHER_TASK})
    calls = [{"name": "get_weather", "arguments": {"city": c}} for c in ("Paris", "Oslo")]
    assert env.step(call_text(calls))[1] == pytest.approx(expected)
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reward": "solve_f2"}, "unknown reward 'solve_f2' (did you mean 'solve_f1'?)"),
        ({"max_turns": 0}, "max_turns must be a positive int, got 0"),
        ({"tool_timeout": -1}, "tool_timeout must be a positive number of seconds"),
        ({"tool_memory_mb": 10}, "tool_memory_mb must be an int of at least 64"),
        ({"split": "dev"}, "unknown split 'dev'; use split='train' or split='test'"),
        ({"render_mode": "human"}, "render_mode must be None or 'ansi'"),
        ({"sandbox": "yes"}, "sandbox= must be an ftrl_gym.sandbox.Sandbox"),
    ],
)
def test_bad_kwargs_raise_env_config_error(kwargs, message):
    with pytest.raises(EnvConfigError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gym.make warns about the unknown render mode first
        gym.make("FTRL-MultiHop-v0", **kwargs)
    assert message in str(info.value)


def test_custom_env_needs_tasks_and_task_index_is_checked(tmp_path):
    with pytest.raises(EnvConfigError, match=r"FTRL-Custom-v0 needs tasks=: a path to a JSONL file"):
        gym.make("FTRL-Custom-v0")
    with pytest.raises(EnvConfigError, match=r"is not a file"):
        gym.make("FTRL-Custom-v0", tasks=str(tmp_path / "missing.jsonl"))
    with pytest.raises(EnvConfigError, match=r"the task list is empty"):
        gym.make("FTRL-Custom-v0", tasks=[])
    with pytest.raises(EnvConfigError, match=r"dataset file .*missing/multi_hop/train.jsonl not found and cannot be"):
        gym.make("FTRL-MultiHop-v0", data_dir=str(tmp_path / "missing"))
    env = gym.make("FTRL-Custom-v0", tasks=load_tasks(FIXTURE))
    with pytest.raises(EnvConfigError, match=r"task_index'\] must be an int in 0..2 \(this env has 3 tasks\), got 3"):
        env.reset(options={"task_index": 3})
    _obs, info = env.reset(options={"task_index": np.int64(1)})  # RLlib and numpy hand back numpy ints
    assert info["task_index"] == 1 and type(info["task_index"]) is int
    env.close()


def test_seeded_draws_use_the_env_generator_only(custom_env):
    indices = [custom_env.reset(seed=s)[1]["task_index"] for s in range(12)]
    again = [custom_env.reset(seed=s)[1]["task_index"] for s in range(12)]
    assert indices == again
    expected = [int(np.random.default_rng(s).integers(3)) for s in range(12)]
    assert indices == expected


def test_shared_sandbox_is_used_and_left_open():
    with Sandbox() as sandbox:
        first = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE), sandbox=sandbox)
        second = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE), sandbox=sandbox)
        for env in (first, second):
            env.reset(options={"task_index": WEATHER_TASK})
            assert env.unwrapped._sandbox is sandbox
        first.close()
        clone = pickle.loads(pickle.dumps(second))
        assert "sandbox" not in clone.unwrapped.spec.kwargs
        call = call_text([{"name": "get_weather", "arguments": {"city": "Paris"}}])
        assert second.step(call)[1] == clone.step(call)[1] == 1.0
        clone.close()
        second.close()


def test_render_ansi_transcript():
    env = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE), render_mode="ansi")
    env.reset(options={"task_index": WEATHER_TASK})
    env.step(call_text([{"name": "get_weather", "arguments": {"city": "Paris"}}]))
    assert env.render() == (
        "[user]\nWhat is the weather in Paris right now?\n\n"
        '[assistant]\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n\n'
        '[tool]\n<tool_response>\n{"city": "Paris", "sky": "Sunny", "temperature_c": 21}\n</tool_response>'
    )
    env.close()
