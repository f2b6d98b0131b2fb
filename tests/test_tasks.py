"""Loading, validating and saving task records (SPEC 2)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from ftrl_gym.errors import TaskFormatError
from ftrl_gym.parsing import MAX_JSON_DEPTH
from ftrl_gym.tasks import MAX_RECORD_BYTES, MAX_STATE_BYTES, TaskRecord, load_tasks, save_tasks

FIXTURE = Path(__file__).parent / "data" / "tasks.jsonl"


def _record(**changes):
    record = {
        "messages": [{"role": "user", "content": "Capital of Peru?"}],
        "tools": [{"type": "function", "function": {"name": "get_capital", "parameters": {}}}],
        "codes": {"get_capital": "def get_capital(country):\n    return 'Lima'\n"},
        "unsolved_set": {"get_capital": ["Lima"]},
        "answer": "Lima",
    }
    record.update(changes)
    return record


def test_fixture_loads_json_string_and_object_fields_alike():
    tasks = load_tasks(FIXTURE)
    assert len(tasks) == 3
    assert tasks[0].tool_names == ["get_weather"]
    assert tasks[0].unsolved_set == {"get_weather": ["Sunny, 21"]}
    assert tasks[1].tool_names == ["get_weather", "get_capital"]
    assert [t.total_answers for t in tasks] == [1, 2, 2]
    assert tasks[2].state == {"accounts": {"checking": 100.0, "savings": 100.0}}
    assert tasks[2].solution[0][0]["name"] == "transfer"


def test_to_dict_writes_reference_json_strings_and_round_trips(tmp_path):
    tasks = load_tasks(FIXTURE)
    out = tasks[1].to_dict()
    assert isinstance(out["tools"], str) and isinstance(out["codes"], str) and isinstance(out["unsolved_set"], str)
    assert json.loads(out["unsolved_set"]) == {"get_capital": ["Oslo"], "get_weather": ["Snow, -3"]}
    assert isinstance(tasks[1].to_dict(json_strings=False)["tools"], list)
    save_tasks(tasks, tmp_path / "copy.jsonl")
    assert load_tasks(tmp_path / "copy.jsonl") == tasks
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "copy.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask


def test_unknown_fields_are_kept():
    record = TaskRecord.from_dict(_record(difficulty="hard"))
    assert record.extra == {"difficulty": "hard"}
    assert record.to_dict()["difficulty"] == "hard"


def test_records_list_and_numbers_as_answers():
    tasks = load_tasks([_record(unsolved_set={"get_capital": [7]}, answer=7), TaskRecord.from_dict(_record())])
    assert tasks[0].unsolved_set == {"get_capital": ["7"]} and tasks[0].answer == "7"
    assert tasks[1].solve_rate == 0.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"unsolved_set": {"get_x": ["1"]}}, "unsolved_set names tool 'get_x' that is not in tools"),
        ({"codes": {}}, "tool 'get_capital' is in tools but has no entry in codes"),
        ({"tools": "[{"}, "tools is a string but not valid JSON"),
        ({"tools": [{"name": "f"}]}, "tools[0] must be"),
        ({"messages": []}, "messages must be a non-empty list"),
        ({"solve_rate": 1.5}, "solve_rate must be a number in [0, 1], got 1.5"),
        ({"scenario": "two_hop"}, "scenario must be one of single_hop"),
        ({"state": [1]}, "state must be a JSON object, got a list"),
        ({"solution": [[{"name": "nope", "arguments": {}}]]}, "solution[0][0] calls 'nope', which is not in tools"),
        ({"unsolved_set": {"get_capital": "Lima"}}, "unsolved_set['get_capital'] must be a list"),
        ({"codes": {"get_capital": 3}}, "codes['get_capital'] must be Python source text, got a number"),
    ],
)
def test_validation_errors_name_line_and_field(tmp_path, changes, message):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(_record()) + "\n\n" + json.dumps(_record(**changes)) + "\n", encoding="utf-8")
    with pytest.raises(TaskFormatError) as info:
        load_tasks(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)


def test_missing_field_and_list_source():
    record = _record()
    del record["codes"]
    with pytest.raises(TaskFormatError, match=r"^records\[1\]: missing required field 'codes'$"):
        load_tasks([_record(), record])


def test_non_utf8_line_names_its_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(json.dumps(_record()).encode() + b"\n" + b'{"messages": "\xff"}\n')
    with pytest.raises(TaskFormatError, match=r"tasks.jsonl:2: line is not valid UTF-8"):
        load_tasks(path)


def test_invalid_json_line_and_non_object_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(_record()) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(TaskFormatError, match=r"tasks.jsonl:2: not valid JSON"):
        load_tasks(path)
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(TaskFormatError, match=r"tasks.jsonl:1: a task record must be a JSON object, got a list"):
        load_tasks(path)


def test_save_is_atomic_on_failure(tmp_path):
    path = tmp_path / "tasks.jsonl"
    save_tasks(load_tasks(FIXTURE), path)
    before = path.read_bytes()

    class Broken(TaskRecord):
        def to_dict(self, json_strings=True):
            raise RuntimeError("boom")

    broken = Broken(**{k: getattr(load_tasks(FIXTURE)[0], k) for k in TaskRecord.__dataclass_fields__})
    with pytest.raises(RuntimeError):
        save_tasks([broken], path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.jsonl"]


def test_state_that_is_not_json_fails_at_load_not_at_reset():
    with pytest.raises(TaskFormatError, match=r"^records\[0\]: state must hold only JSON values .*set"):
        load_tasks([_record(state={"accounts": {"alice", "bob"}})])


def _nested(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"messages": [{"role": "user", "content": _nested(64)}]},
         "messages is nested 66 levels deep, more than MAX_JSON_DEPTH=64 (ftrl_gym.parsing); flatten it"),
        ({"tools": json.dumps([{"type": "function",
                                "function": {"name": "get_capital", "parameters": _nested(70)}}])},
         "tools is nested 73 levels deep, more than MAX_JSON_DEPTH=64"),
        ({"solution": [[{"name": "get_capital", "arguments": {"a": _nested(65)}}]]},
         "solution is nested 69 levels deep, more than MAX_JSON_DEPTH=64"),
        ({"state": {"a": _nested(900)}}, "state is nested 901 levels deep, more than MAX_JSON_DEPTH=64"),
        ({"notes": _nested(65)}, "field 'notes' is nested 65 levels deep, more than MAX_JSON_DEPTH=64"),
        ({"codes": {"get_capital": "def get_capital(country):\n    return 'Lima'\n", "helper": "x = 1\n"}},
         "codes['helper'] is not a tool in tools, so no agent could call it; add its schema to tools or "
         "remove it from codes"),
    ],
)
def test_limits_are_checked_at_load_naming_line_field_and_value(tmp_path, changes, message):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(_record()) + "\n" + json.dumps(_record(**changes)) + "\n", encoding="utf-8")
    with pytest.raises(TaskFormatError) as info:
        load_tasks(path)
    assert str(info.value).startswith(f"{path}:2: {message}")
    with pytest.raises(TaskFormatError, match=r"^records\[0\]: "):
        load_tasks([_record(**changes)])


def test_record_and_state_byte_limits(tmp_path):
    assert (MAX_RECORD_BYTES, MAX_STATE_BYTES, MAX_JSON_DEPTH) == (2**20, 2**24, 64)
    long_text = [{"role": "user", "content": "é" * (MAX_RECORD_BYTES // 2)}]
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(_record(messages=long_text), ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(TaskFormatError) as info:
        load_tasks(path)
    assert str(info.value) == (
        f"{path}:1: the record is 1048769 bytes of JSON without its state (messages 1048606), more than "
        "MAX_RECORD_BYTES=1048576; shorten messages or split the task"
    )
    state = {"blob": "x" * MAX_STATE_BYTES}
    with pytest.raises(TaskFormatError, match=r"^records\[0\]: state is 16777227 bytes of JSON, more than "
                                              r"MAX_STATE_BYTES=16777216; keep the world state a tool needs"):
        load_tasks([_record(state=state)])
    state["blob"] = "x" * (MAX_STATE_BYTES - 11)
    assert len(load_tasks([_record(state=state)])[0].state_json) == MAX_STATE_BYTES


def test_many_values_are_refused_before_anything_encodes_them():
    shared: list = []
    for _ in range(60):
        shared = [shared, shared]  # 2**60 lists once written out, 60 deep
    with pytest.raises(TaskFormatError, match=r"^records\[0\]: field 'notes' holds more than 524288 values, so "
                                              r"more than MAX_RECORD_BYTES=1048576 bytes of JSON$"):
        load_tasks([_record(notes=shared)])


def test_state_is_encoded_once_at_load_and_hand_built_records_are_checked_too():
    task = load_tasks([_record(state={"b": [1.5, "é"], "a": None})])[0]
    assert task.state_json == '{"b":[1.5,"\\u00e9"],"a":null}'
    assert task.tool_codes == {"get_capital": task.codes["get_capital"]}
    assert load_tasks([_record()])[0].state_json is None
    hand_built = dataclasses.replace(task, messages=[{"role": "user", "content": _nested(70)}])
    with pytest.raises(TaskFormatError, match=r"^records\[0\]: messages is nested 72 levels deep"):
        load_tasks([hand_built])


def test_non_json_values_in_a_list_record_fail_at_load():
    with pytest.raises(TaskFormatError, match=r"^records\[0\]: messages must hold only JSON values: .*set"):
        load_tasks([_record(messages=[{"role": "user", "content": {1, 2}}])])
