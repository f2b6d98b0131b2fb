"""Fuzzing task files: a malformed record fails at load, naming its line and field; a loadable one runs."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from fuzz_strategies import any_text, json_values
from hypothesis import given
from hypothesis import strategies as st
from reliability_helpers import FIXTURE, call_text, direct_children, examples, fixture_records

from ftrl_gym.envs import ToolUseEnv
from ftrl_gym.envs.registration import CUSTOM_ID
from ftrl_gym.errors import TaskFormatError
from ftrl_gym.sandbox import Sandbox, SandboxConfig
from ftrl_gym.tasks import load_tasks

FILE_EXAMPLES = 200
RECORD_EXAMPLES = 150
"""Examples per property (times ``FTRL_FUZZ_SCALE``)."""

FIELDS = ["messages", "tools", "codes", "unsolved_set", "solve_rate", "answer", "data_source", "split",
          "scenario", "state", "solution"]
REQUIRED = {"messages", "tools", "codes", "unsolved_set"}
LINKED = {"tools", "codes", "unsolved_set", "solution"}
"""Fields checked against each other: a fault in one may be reported under another."""
BASES = fixture_records()


@dataclass(frozen=True)
class Mutation:
    """One way to break (or harmlessly change) a task line, and what the loader must say about it."""

    kind: str
    field: str | None = None
    value: Any = None

    def must_fail(self) -> bool:
        """Whether every loader must refuse the line."""
        return self.kind in {"delete_required", "unsolved_without_tool", "tool_without_code", "bad_string",
                             "deep_string", "non_utf8", "truncated", "deep_line", "big_int_line",
                             "not_an_object"}

    def named_in_error(self) -> set[str]:
        """Words of which the error message must contain at least one."""
        if self.kind in {"non_utf8"}:
            return {"UTF-8"}
        if self.kind in {"truncated", "deep_line", "big_int_line"}:
            return {"not valid JSON"}
        if self.kind == "not_an_object":
            return {"JSON object"}
        if self.kind in {"unsolved_without_tool"}:
            return {"unsolved_set"}
        if self.kind in {"tool_without_code"}:
            return {"codes"}
        if self.kind in {"message_content"}:
            return {"messages"}
        assert self.field is not None
        return LINKED if self.field in LINKED else {self.field}


mutations = st.one_of(
    st.builds(Mutation, st.just("delete_required"), st.sampled_from(sorted(REQUIRED))),
    st.builds(Mutation, st.just("delete_optional"), st.sampled_from(sorted(set(FIELDS) - REQUIRED))),
    st.builds(Mutation, st.just("wrong_type"), st.sampled_from(FIELDS), json_values),
    st.builds(Mutation, st.just("extra"), any_text(10).filter(lambda k: k not in FIELDS), json_values),
    st.builds(Mutation, st.just("unsolved_without_tool"), st.just("unsolved_set"), any_text(10)),
    st.builds(Mutation, st.just("tool_without_code"), st.just("codes")),
    st.builds(Mutation, st.just("as_json_string"), st.sampled_from(["tools", "codes", "unsolved_set", "state",
                                                                      "solution", "messages"])),
    st.builds(Mutation, st.just("bad_string"), st.sampled_from(["tools", "codes", "unsolved_set"]),
              st.sampled_from(["{", "[1,", "nope", "{'a': 1}", "[" * 3000, '{"a": ' + "9" * 5000 + "}"])),
    st.builds(Mutation, st.just("deep_string"), st.sampled_from(["tools", "codes", "unsolved_set", "state"]),
              st.integers(1000, 50_000)),
    st.builds(Mutation, st.just("message_content"), st.just("messages"), json_values),
    st.builds(Mutation, st.just("tool_schema"), st.just("tools"), json_values),
    st.builds(Mutation, st.just("non_utf8"), st.none(),
              st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff", b"\x80abc", b"\xf8\x88\x80\x80\x80"])),
    st.builds(Mutation, st.just("truncated"), st.none(), st.floats(0.01, 0.99)),
    st.builds(Mutation, st.just("deep_line"), st.none(), st.integers(1000, 100_000)),
    st.builds(Mutation, st.just("big_int_line"), st.none(), st.integers(4400, 20_000)),
    st.builds(Mutation, st.just("not_an_object"), st.none(), st.one_of(st.lists(st.integers()), st.integers(),
                                                                  st.none(), any_text(5))),
)


def mutate_record(record: dict[str, Any], mutation: Mutation) -> dict[str, Any] | None:
    """Apply a record-level mutation; None for line-level ones."""
    out = copy.deepcopy(record)
    kind, field, value = mutation.kind, mutation.field, mutation.value
    if kind in {"delete_required", "delete_optional"}:
        out.pop(field, None)
    elif kind in {"wrong_type", "extra"}:
        out[field] = value
    elif kind == "unsolved_without_tool":
        out["unsolved_set"] = dict(out["unsolved_set"], **{f"absent {value}": ["x"]})
    elif kind == "tool_without_code":
        out["codes"] = {k: v for k, v in out["codes"].items() if k != out["tools"][0]["function"]["name"]}
    elif kind == "as_json_string":
        out[field] = json.dumps(out.get(field))
    elif kind == "bad_string":
        out[field] = value
    elif kind == "deep_string":
        out[field] = "[" * value + "]" * value
    elif kind == "message_content":
        out["messages"] = [dict(out["messages"][0], content=value)]
    elif kind == "tool_schema":
        out["tools"] = [value] + out["tools"][1:]
    else:
        return None
    return out


def mutated_line(record: dict[str, Any], mutation: Mutation) -> bytes:
    """The bytes of the mutated line (without its newline)."""
    changed = mutate_record(record, mutation)
    if changed is not None:
        return json.dumps(changed).encode()
    line = json.dumps(record).encode()
    if mutation.kind == "non_utf8":
        middle = len(line) // 2
        return line[:middle] + mutation.value + line[middle:]
    if mutation.kind == "truncated":
        return line[: max(1, int(len(line) * mutation.value))]
    if mutation.kind == "deep_line":
        return b"[" * mutation.value
    if mutation.kind == "big_int_line":
        return b'{"messages": ' + b"1" * mutation.value + b"}"
    return json.dumps(mutation.value).encode()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One worker shared by every env built from a fuzzed file (no process start per example)."""
    with Sandbox(SandboxConfig(timeout_s=2.0, memory_mb=256)) as box:
        yield box


def play_briefly(tasks: list[Any], index: int, sandbox: Sandbox) -> None:
    """Reset on task ``index``, make one call of each tool and answer: nothing may raise."""
    env = ToolUseEnv(tasks, sandbox=sandbox, max_turns=3)
    try:
        obs, _ = env.reset(options={"task_index": index})
        assert env.observation_space.contains(obs)
        task = env.unwrapped.task
        calls = [{"name": name, "arguments": {}} for name in task.tool_names[:2]]
        if calls:
            obs, _, terminated, truncated, info = env.step(call_text(calls))
            assert env.observation_space.contains(obs) and not terminated
            assert len(info["tool_results"]) == len(calls)
            if truncated:
                return
        obs, _, terminated, _, _ = env.step(f"The answer is {task.answer}.")
        assert env.observation_space.contains(obs) and terminated
    finally:
        env.close()


@examples(FILE_EXAMPLES)
@given(
    base=st.integers(0, len(BASES) - 1),
    before=st.integers(0, 3),
    after=st.integers(0, 2),
    blank_lines=st.integers(0, 2),
    mutation=mutations,
)
def test_malformed_line_fails_at_load_naming_line_and_field(
    tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox, base: int, before: int, after: int,
    blank_lines: int, mutation: Mutation,
) -> None:
    good = [json.dumps(BASES[i % len(BASES)]).encode() for i in range(before + after)]
    lines = good[:before] + [b""] * blank_lines + [mutated_line(BASES[base], mutation)] + good[before:]
    path = tmp_path_factory.mktemp("fuzz") / "tasks.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    lineno = before + blank_lines + 1
    try:
        tasks = load_tasks(path)
    except TaskFormatError as exc:
        message = str(exc)
        assert message.startswith(f"{path}:{lineno}: "), message
        assert any(word in message for word in mutation.named_in_error()), (mutation.kind, message)
        assert "\n" not in message
        pids = direct_children()  # a new sandbox would add one; the shared one forks episodes ahead on its own
        with pytest.raises(TaskFormatError, match=f":{lineno}: "):
            gym.make(CUSTOM_ID, tasks=str(path))
        assert direct_children() <= pids
        return
    assert not mutation.must_fail(), (mutation, "loaded")
    assert len(tasks) == before + after + 1
    play_briefly(tasks, before, sandbox)


@examples(RECORD_EXAMPLES)
@given(base=st.integers(0, len(BASES) - 1), position=st.integers(0, 2), mutation=mutations)
def test_malformed_record_in_a_list_names_its_index(sandbox: Sandbox, base: int, position: int,
                                                    mutation: Mutation) -> None:
    record = mutate_record(BASES[base], mutation)
    if record is None:
        return
    records = copy.deepcopy(BASES[:position]) + [record]
    try:
        tasks = load_tasks(records)
    except TaskFormatError as exc:
        assert str(exc).startswith(f"records[{position}]: "), str(exc)
        assert any(word in str(exc) for word in mutation.named_in_error()), (mutation.kind, str(exc))
        return
    assert not mutation.must_fail(), (mutation, "loaded")
    play_briefly(tasks, position, sandbox)


def test_bad_last_line_of_a_long_file_loads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    good = FIXTURE.read_bytes().splitlines()
    path.write_bytes(b"\n".join(good * 100) + b'\n{"messages": [' + b"[" * 5000 + b"\n")
    pids = direct_children()
    with pytest.raises(TaskFormatError, match=rf"^{path}:301: not valid JSON"):
        load_tasks(path)
    with pytest.raises(TaskFormatError, match=rf"^{path}:301: "):
        gym.make(CUSTOM_ID, tasks=str(path))
    assert direct_children() <= pids


@pytest.mark.parametrize(("line", "fragment"), [
    (b"[" * 100_000, "not valid JSON"),
    (b'{"messages": ' + b"1" * 5000 + b"}", "not valid JSON"),
    (json.dumps(dict(BASES[0], tools="[" * 5000)).encode(), "tools is a string but not valid JSON"),
    (json.dumps(dict(BASES[0], codes='{"a": ' + "9" * 5000 + "}")).encode(), "codes is a string but not valid JSON"),
], ids=["array nested 100000 deep", "integer of 5000 digits", "tools string nested 5000 deep",
        "codes string with a 5000-digit integer"])
def test_json_past_the_decoder_limits_is_a_task_format_error(tmp_path: Path, line: bytes, fragment: str) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(FIXTURE.read_bytes().splitlines()[0] + b"\n" + line + b"\n")
    with pytest.raises(TaskFormatError, match=rf"^{path}:2: {fragment}"):
        load_tasks(path)
