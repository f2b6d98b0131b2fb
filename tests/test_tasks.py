"""Loading, validating and saving task records (SPEC 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ftrl_gym.errors import TaskFormatError
from ftrl_gym.tasks import TaskRecord, load_tasks, save_tasks

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
        ({"solution": [[{"name": "nope", "arguments": {}}]]}, "solution[0][0] calls 'nope', which has no code"),
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
