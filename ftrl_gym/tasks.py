"""Task records (SPEC 2): one tool-use task per JSON line, loaded, validated and saved."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftrl_gym.errors import TaskFormatError

SCENARIOS: tuple[str, ...] = ("single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop")
"""The four scenarios of the construction pipeline (SPEC 6), in dataset order."""

JSON_STRING_FIELDS: tuple[str, ...] = ("tools", "codes", "unsolved_set")
"""Fields the reference implementation stores as JSON strings; ``to_dict`` writes them that way."""

_KNOWN_FIELDS = frozenset(
    {
        "messages", "tools", "codes", "unsolved_set", "solve_rate", "answer", "data_source",
        "split", "scenario", "state", "solution",
    }
)


@dataclass(frozen=True)
class TaskRecord:
    """One episode's task: the opening conversation, the tools, their code and the expected answers.

    Attributes are fixed after construction (the containers themselves are plain lists and dicts:
    treat them as read-only; the env never mutates them).
    """

    messages: list[dict[str, Any]]
    """OpenAI chat messages that open the episode."""
    tools: list[dict[str, Any]]
    """OpenAI function-tool schemas ``{"type": "function", "function": {"name", ...}}``."""
    codes: dict[str, str]
    """Tool name → Python source defining a function of that name."""
    unsolved_set: dict[str, list[str]]
    """Tool name → expected answer strings still to be obtained from that tool."""
    solve_rate: float = 0.0
    """Fraction of the sub-problems already solved when the record starts."""
    answer: str | None = None
    """The final answer, if the task has one."""
    data_source: str | None = None
    """Provenance of the record."""
    split: str | None = None
    """``train`` or ``test``."""
    scenario: str | None = None
    """One of :data:`SCENARIOS`."""
    state: dict[str, Any] | None = None
    """World state of a stateful toolset, passed to every tool as the keyword ``data``."""
    solution: list[list[dict[str, Any]]] | None = None
    """Reference calls, turn by turn: each turn is a list of ``{"name", "arguments"}``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields this format does not know, kept so that saving writes them back unchanged."""

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered to the agent, in schema order."""
        return [tool["function"]["name"] for tool in self.tools]

    @property
    def total_answers(self) -> int:
        """Number of expected answers in ``unsolved_set`` (T of the episode metrics)."""
        return sum(len(answers) for answers in self.unsolved_set.values())

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], source: str = "<record>") -> TaskRecord:
        """Validate one decoded JSON record.

        Args:
            record: The decoded record; ``tools``, ``codes``, ``unsolved_set`` (and any other
                structured field) may be JSON strings or objects.
            source: Where the record came from, prefixed to error messages (``tasks.jsonl:17``).

        Returns:
            The validated record.

        Raises:
            TaskFormatError: A field is missing or malformed; the message names source and field.
        """
        if not isinstance(record, Mapping):
            raise TaskFormatError(f"{source}: a task record must be a JSON object, got {_kind(record)}")
        validator = _Validator(record, source)
        return validator.build()

    def to_dict(self, json_strings: bool = True) -> dict[str, Any]:
        """Return the record as a JSON-ready dict.

        Args:
            json_strings: Write ``tools``, ``codes`` and ``unsolved_set`` as JSON strings, as the
                reference implementation does (its tools read such files unchanged).

        Returns:
            A dict that :meth:`from_dict` turns back into an equal record.
        """
        out: dict[str, Any] = {
            "messages": self.messages,
            "tools": self.tools,
            "codes": self.codes,
            "unsolved_set": self.unsolved_set,
            "solve_rate": self.solve_rate,
        }
        if json_strings:
            for name in JSON_STRING_FIELDS:
                out[name] = json.dumps(out[name], ensure_ascii=False)
        optional = {
            "answer": self.answer,
            "data_source": self.data_source,
            "split": self.split,
            "scenario": self.scenario,
            "state": self.state,
            "solution": self.solution,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        out.update(self.extra)
        return out


class _Validator:
    """Checks one record field by field, raising with the source and field name on the first fault."""

    def __init__(self, record: Mapping[str, Any], source: str) -> None:
        self.record = record
        self.source = source

    def fail(self, message: str) -> TaskFormatError:
        return TaskFormatError(f"{self.source}: {message}")

    def decoded(self, name: str, required: bool) -> Any:
        """Return a field's value, decoding it when it is a JSON string of a structured value."""
        if name not in self.record or self.record[name] is None:
            if required:
                raise self.fail(f"missing required field '{name}'")
            return None
        value = self.record[name]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise self.fail(f"{name} is a string but not valid JSON ({exc})") from None
        return value

    def build(self) -> TaskRecord:
        messages = self.messages()
        tools = self.tools()
        names = [tool["function"]["name"] for tool in tools]
        codes = self.codes(names)
        unsolved = self.unsolved_set(names)
        return TaskRecord(
            messages=messages,
            tools=tools,
            codes=codes,
            unsolved_set=unsolved,
            solve_rate=self.solve_rate(),
            answer=self.optional_text("answer", allow_numbers=True),
            data_source=self.optional_text("data_source"),
            split=self.optional_text("split"),
            scenario=self.scenario(),
            state=self.state(),
            solution=self.solution(codes),
            extra={k: v for k, v in self.record.items() if k not in _KNOWN_FIELDS},
        )

    def messages(self) -> list[dict[str, Any]]:
        messages = self.decoded("messages", required=True)
        if not isinstance(messages, list) or not messages:
            raise self.fail(f"messages must be a non-empty list of chat messages, got {_kind(messages)}")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise self.fail(f"messages[{i}] must be an object with a string 'role'")
        return messages

    def tools(self) -> list[dict[str, Any]]:
        tools = self.decoded("tools", required=True)
        if not isinstance(tools, list):
            raise self.fail(f"tools must be a list of function schemas, got {_kind(tools)}")
        seen: set[str] = set()
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not name:
                raise self.fail(
                    f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
                )
            if name in seen:
                raise self.fail(f"tools[{i}] repeats the tool name {name!r}")
            seen.add(name)
        return tools

    def codes(self, names: Sequence[str]) -> dict[str, str]:
        codes = self.decoded("codes", required=True)
        if not isinstance(codes, dict):
            raise self.fail(f"codes must map tool names to Python source, got {_kind(codes)}")
        for name, source in codes.items():
            if not isinstance(source, str):
                raise self.fail(f"codes[{name!r}] must be Python source text, got {_kind(source)}")
        for name in names:
            if name not in codes:
                raise self.fail(f"tool {name!r} is in tools but has no entry in codes")
        return codes

    def unsolved_set(self, names: Sequence[str]) -> dict[str, list[str]]:
        unsolved = self.decoded("unsolved_set", required=True)
        if not isinstance(unsolved, dict):
            raise self.fail(f"unsolved_set must map tool names to answer lists, got {_kind(unsolved)}")
        out: dict[str, list[str]] = {}
        for name, answers in unsolved.items():
            if name not in names:
                raise self.fail(f"unsolved_set names tool {name!r} that is not in tools")
            if not isinstance(answers, list):
                raise self.fail(f"unsolved_set[{name!r}] must be a list of answer strings")
            out[name] = [self.answer_text(f"unsolved_set['{name}'][{i}]", a) for i, a in enumerate(answers)]
        return out

    def answer_text(self, where: str, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise self.fail(f"{where} must be a string, got {_kind(value)}")

    def solve_rate(self) -> float:
        value = self.record.get("solve_rate", 0.0)
        if value is None:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise self.fail(f"solve_rate must be a number in [0, 1], got {value!r}")
        return float(value)

    def optional_text(self, name: str, allow_numbers: bool = False) -> str | None:
        value = self.record.get(name)
        if value is None:
            return None
        if allow_numbers:
            return self.answer_text(name, value)
        if not isinstance(value, str):
            raise self.fail(f"{name} must be a string, got {_kind(value)}")
        return value

    def scenario(self) -> str | None:
        value = self.optional_text("scenario")
        if value is not None and value not in SCENARIOS:
            raise self.fail(f"scenario must be one of {', '.join(SCENARIOS)}, got {value!r}")
        return value

    def state(self) -> dict[str, Any] | None:
        value = self.decoded("state", required=False)
        if value is not None and not isinstance(value, dict):
            raise self.fail(f"state must be a JSON object, got {_kind(value)}")
        if value is not None:
            try:
                json.dumps(value)
            except (TypeError, ValueError, RecursionError) as exc:
                raise self.fail(f"state must hold only JSON values (it travels to the sandbox as JSON): {exc}") from None
        return value

    def solution(self, codes: Mapping[str, str]) -> list[list[dict[str, Any]]] | None:
        turns = self.decoded("solution", required=False)
        if turns is None:
            return None
        if not isinstance(turns, list):
            raise self.fail(f"solution must be a list of turns, got {_kind(turns)}")
        for t, turn in enumerate(turns):
            if not isinstance(turn, list) or not turn:
                raise self.fail(f"solution[{t}] must be a non-empty list of calls")
            for c, call in enumerate(turn):
                where = f"solution[{t}][{c}]"
                if not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
                    raise self.fail(f"{where} must be {{\"name\": ..., \"arguments\": {{...}}}}")
                if call.get("name") not in codes:
                    raise self.fail(f"{where} calls '{call.get('name')}', which has no code")
        return turns


def _kind(value: Any) -> str:
    """Name a JSON value's type for error messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def load_tasks(source: str | os.PathLike[str] | Iterable[TaskRecord | Mapping[str, Any]]) -> list[TaskRecord]:
    """Load and validate task records, all or nothing.

    Args:
        source: A path to a JSONL file (one record per line; blank lines are skipped), or an
            iterable of records (``TaskRecord`` objects or dicts).

    Returns:
        The records in file order.

    Raises:
        TaskFormatError: A line is not UTF-8 or not JSON, or a record is invalid. The message
            names the file and line (``tasks.jsonl:17``) or the list index (``records[3]``).
        FileNotFoundError: The path does not exist.
    """
    if isinstance(source, (str, os.PathLike)):
        return _load_file(Path(source), str(source))
    records = []
    for i, item in enumerate(source):
        records.append(item if isinstance(item, TaskRecord) else TaskRecord.from_dict(item, f"records[{i}]"))
    return records


def _load_file(path: Path, name: str) -> list[TaskRecord]:
    records = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{name}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TaskFormatError(
                f"{where}: line is not valid UTF-8 (byte {exc.start}: {exc.reason}); "
                "task files must be UTF-8 encoded"
            ) from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise TaskFormatError(f"{where}: not valid JSON ({exc})") from None
        records.append(TaskRecord.from_dict(record, where))
    return records


def save_tasks(records: Iterable[TaskRecord], path: str | os.PathLike[str], json_strings: bool = True) -> None:
    """Write records as JSONL, atomically (a crash never leaves a half-written file).

    Args:
        records: The records to write.
        path: Destination file; its directory must exist.
        json_strings: Passed to :meth:`TaskRecord.to_dict`.
    """
    target = Path(path)
    lines = [json.dumps(r.to_dict(json_strings), ensure_ascii=False) + "\n" for r in records]
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    """The process umask (``mkstemp`` creates files 0600; saved datasets get the usual mode)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
