"""Task records through ``gym.make``: limits refused at load, state encoded once, only listed tools callable."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from typing import Any

import gymnasium as gym
import pytest
from env_helpers import FIXTURE, call_text

from ftrl_gym.errors import TaskFormatError
from ftrl_gym.tasks import MAX_RECORD_BYTES, load_tasks

WEATHER_TASK, BANK_TASK = 0, 2


def fixture_record(index: int) -> dict[str, Any]:
    return load_tasks(FIXTURE)[index].to_dict(json_strings=False)


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def bank_task(megabytes: float) -> dict[str, Any]:
    """The fixture's bank task over a world state of about ``megabytes`` MB (many more accounts)."""
    record = fixture_record(BANK_TASK)
    accounts = record["state"]["accounts"]
    i = 0
    while 26 * i < megabytes * 1e6:
        accounts[f"customer{i:08d}"] = 1000.0 + i  # '"customer00000000":1000.0,' is 26 bytes or a few more
        i += 1
    return record


def test_deep_record_is_refused_at_load_naming_record_field_limit_and_depth(tmp_path):
    record = fixture_record(WEATHER_TASK)
    record["messages"][0]["content"] = nested(70)
    with pytest.raises(TaskFormatError) as info:
        gym.make("FTRL-Custom-v0", tasks=[fixture_record(1), record])
    assert str(info.value) == (
        "records[1]: messages is nested 72 levels deep, more than MAX_JSON_DEPTH=64 (ftrl_gym.parsing); flatten it"
    )
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(fixture_record(1)) + "\n" + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(TaskFormatError, match=rf"^{path}:2: messages is nested 72 levels deep, more than"):
        gym.make("FTRL-Custom-v0", tasks=str(path))


def test_record_past_the_byte_limit_is_refused_at_load():
    record = fixture_record(WEATHER_TASK)
    record["messages"][0]["content"] = "x" * MAX_RECORD_BYTES
    with pytest.raises(TaskFormatError) as info:
        gym.make("FTRL-Custom-v0", tasks=[record])
    assert str(info.value) == (
        "records[0]: the record is 1049257 bytes of JSON without its state (messages 1048606), more than "
        "MAX_RECORD_BYTES=1048576; shorten messages or split the task"
    )


def test_code_without_a_schema_is_refused_at_load():
    record = fixture_record(WEATHER_TASK)
    record["codes"]["delete_all"] = "def delete_all():\n    return 'gone'\n"
    with pytest.raises(TaskFormatError) as info:
        gym.make("FTRL-Custom-v0", tasks=[record])
    assert str(info.value) == (
        "records[0]: codes['delete_all'] is not a tool in tools, so no agent could call it; "
        "add its schema to tools or remove it from codes"
    )


def test_code_without_a_schema_is_unreachable_even_past_the_loader():
    env = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE))
    task = env.unwrapped.tasks[WEATHER_TASK]
    codes = dict(task.codes, delete_all="def delete_all():\n    return 'gone'\n")
    env.unwrapped.tasks[WEATHER_TASK] = dataclasses.replace(task, codes=codes)
    env.reset(options={"task_index": WEATHER_TASK})
    obs, reward, terminated, _, info = env.step(call_text([{"name": "delete_all", "arguments": {}}]))
    assert (reward, terminated) == (0.0, False)
    assert info["tool_results"][0]["error"] == "error: unknown tool 'delete_all'; available: get_weather"
    _, reward, *_ = env.step(call_text([{"name": "get_weather", "arguments": {"city": "Paris"}}]))
    assert reward == 1.0
    env.close()


def test_five_mb_state_is_encoded_once_at_load_not_per_reset(monkeypatch):
    record = bank_task(5)
    env = gym.make("FTRL-Custom-v0", tasks=[record])
    task = env.unwrapped.tasks[0]
    assert len(task.state_json) > 5_000_000

    def no_deepcopy(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("copy.deepcopy called during an episode")

    real_dumps = json.dumps
    big_dumps: list[int] = []

    def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        text = real_dumps(obj, *args, **kwargs)
        if len(text) > 1_000_000:
            big_dumps.append(len(text))
        return text

    monkeypatch.setattr(copy, "deepcopy", no_deepcopy)
    monkeypatch.setattr(json, "dumps", dumps)
    for _ in range(3):
        env.reset()
        fresh = env.unwrapped.get_state()  # before the first call: a copy decoded from the string
        assert fresh["accounts"]["checking"] == 100.0
        fresh["accounts"]["checking"] = -1.0
        assert env.unwrapped.get_state()["accounts"]["checking"] == 100.0
        obs, reward, *_ = env.step(call_text(task.solution[0]))
        assert (obs, reward) == ("<tool_response>\ntransferred 40.00 from checking to savings\n</tool_response>", 1.0)
        assert env.unwrapped.get_state()["accounts"]["checking"] == 60.0
    assert big_dumps == []
    monkeypatch.undo()
    assert task.state["accounts"]["checking"] == 100.0
    env.close()


def test_stateful_env_pickles_before_and_after_its_first_call():
    env = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE))
    env.reset(options={"task_index": BANK_TASK})
    fresh = pickle.loads(pickle.dumps(env))
    assert fresh.unwrapped.get_state() == {"accounts": {"checking": 100.0, "savings": 100.0}}
    env.step(call_text(env.unwrapped.task.solution[0]))
    moved = pickle.loads(pickle.dumps(env))
    assert moved.unwrapped.get_state() == {"accounts": {"checking": 60.0, "savings": 140.0}}
    assert moved.step(call_text(env.unwrapped.task.solution[1]))[:2] == (
        "<tool_response>\nsavings balance: 140.00\n</tool_response>", 1.0)
    for clone in (fresh, moved, env):
        clone.close()


def test_make_vec_with_a_stateful_task_list():
    tasks = [fixture_record(BANK_TASK)]
    vec = gym.make_vec("FTRL-Custom-v0", num_envs=2, vectorization_mode="async", tasks=tasks)
    vec.reset(seed=0)
    solution = fixture_record(BANK_TASK)["solution"]
    _, rewards, *_ = vec.step((call_text(solution[0]), call_text(solution[1])))
    assert rewards.tolist() == [1.0, 0.0]  # the second env asks for the balance before the transfer
    vec.close()
