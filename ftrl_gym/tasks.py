"""Task records (SPEC 2): one tool-use task per JSON line, loaded, validated and saved."""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ftrl_gym.errors import TaskFormatError
from ftrl_gym.parsing import MAX_JSON_DEPTH, json_extent
from ftrl_gym.scoring import CallScorer, ScorerSpecError, TurnScorer, build_scorer

SCENARIOS: tuple[str, ...] = ("single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop")
"""The four scenarios of the construction pipeline (SPEC 6), in dataset order."""

JSON_STRING_FIELDS: tuple[str, ...] = ("tools", "codes", "unsolved_set")
"""Fields the reference implementation stores as JSON strings; ``to_dict`` writes them that way."""

MAX_RECORD_BYTES = 2**20
"""UTF-8 bytes of a record's fields written as JSON, its state excepted (1 MiB; the shipped records
are at most 17 kB). Messages, tool schemas and code are read at every reset and rendered into
observations: a record past this size is refused at load rather than slowing every episode."""

MAX_STATE_BYTES = 2**24
"""Bytes of a record's world state written as compact JSON (16 MiB: three times the 5 MB state of the
stateful benchmark). The sandbox worker decodes the state once per episode, within its memory limit."""

STATE_KEYWORD = "data"
"""The keyword a stateful task's tools receive the world state as (SPEC 4). A tool whose schema declares
a parameter of this name is refused at load, so the state never silently replaces an argument."""

_MAX_EXPANSION = 5
"""A field's compact JSON is at most this many times longer than its text in a file's line: only a
number in exponent form grows (``1e15`` is written ``1000000000000000.0``, 4.5 times as long); escapes
and whitespace only shrink. Lines up to ``MAX_RECORD_BYTES / 5`` bytes are therefore never measured."""

_COMPACT_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

_KNOWN_FIELDS = frozenset(
    {
        "messages", "tools", "codes", "unsolved_set", "solve_rate", "answer", "data_source",
        "split", "scenario", "state", "solution", "entry_points", "scorer",
        "user_turns", "tools_added", "hidden_tools_run",
    }
)


@dataclass(frozen=True)
class TaskRecord:
    """One episode's task: the opening conversation, the tools, their code and the expected answers.

    Attributes are fixed after construction (the containers themselves are plain lists and dicts:
    treat them as read-only; the env never mutates them). Records that :func:`load_tasks` returns are
    within :data:`MAX_JSON_DEPTH`, :data:`MAX_RECORD_BYTES` and :data:`MAX_STATE_BYTES`, and every
    ``codes`` entry is a tool listed in ``tools``.
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
    """Reference calls, turn by turn: each turn is a list of ``{"name", "arguments"}``; an empty turn
    is answered in text (it ends a user turn of a task with ``user_turns``)."""
    entry_points: dict[str, str] = field(default_factory=dict)
    """Tool name → the Python function in its code that runs it, for names that are not plain
    identifiers (``math.factorial``, ``__init__``); other tools run the function of their own name."""
    scorer: dict[str, Any] | None = None
    """A call scorer spec (``ftrl_gym.scoring``): when present, calls are scored by matching them
    against acceptable values instead of by their results, and tools without code are not executed."""
    user_turns: list[list[dict[str, Any]]] = field(default_factory=list)
    """Scripted later user turns: when the agent answers without a call, the next turn's messages
    arrive and the episode goes on; it ends on a call-free turn after the last one."""
    tools_added: dict[int, list[str]] = field(default_factory=dict)
    """User turn k (1 = ``user_turns[0]``) → tools hidden from the agent until that turn arrives."""
    hidden_tools_run: bool = False
    """Whether a tool ``tools_added`` still hides runs when called (it is only not offered), as BFCL's
    executor runs any method of a task's classes; by default such a call is an unknown tool."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields this format does not know, kept so that saving writes them back unchanged."""

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered to the agent, in schema order."""
        return [tool["function"]["name"] for tool in self.tools]

    @cached_property
    def tool_codes(self) -> dict[str, str]:
        """The code of the tools listed in ``tools``, the only ones an episode can call, keyed by the
        function that runs each (:meth:`entry_point`)."""
        return {self.entry_point(name): self.codes[name] for name in self.tool_names if name in self.codes}

    def entry_point(self, name: str) -> str:
        """The function of a tool's code that runs it: its ``entry_points`` entry, else its name."""
        return self.entry_points.get(name, name)

    def tools_at(self, user_turn: int) -> list[dict[str, Any]]:
        """The tool schemas offered during user turn ``user_turn`` (0: the opening messages)."""
        hidden = {name for turn, names in self.tools_added.items() if turn > user_turn for name in names}
        return [tool for tool in self.tools if tool["function"]["name"] not in hidden] if hidden else self.tools

    @cached_property
    def call_scorer(self) -> CallScorer | TurnScorer | None:
        """The scorer built from ``scorer`` (checked at load), or None for answer-verified tasks."""
        return None if self.scorer is None else build_scorer(self.scorer)

    @property
    def expected_total(self) -> int:
        """T of the episode metrics: the scorer's expected calls, else the answers in ``unsolved_set``."""
        scorer = self.call_scorer
        return self.total_answers if scorer is None else scorer.expected_calls

    @cached_property
    def state_json(self) -> str | None:
        """``state`` as one compact JSON document, encoded once (at load) and handed as it is to the
        sandbox session of every episode, so that no episode copies or encodes the state again.
        None for a stateless task."""
        return None if self.state is None else json.dumps(self.state, separators=(",", ":"))

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
        return _Validator(record, source).build()

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
            "entry_points": self.entry_points or None,
            "user_turns": self.user_turns or None,
            "tools_added": {str(k): v for k, v in self.tools_added.items()} or None,
            "hidden_tools_run": self.hidden_tools_run or None,
            "scorer": self.scorer,
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

    def __init__(self, record: Any, source: str, line_bytes: int | None = None) -> None:
        """Check that ``record`` is an object; ``line_bytes`` is the length of its line in a file."""
        if not isinstance(record, Mapping):
            raise TaskFormatError(f"{source}: a task record must be a JSON object, got {_kind(record)}")
        self.record = record
        self.source = source
        self.line_bytes = line_bytes

    def fail(self, message: str) -> TaskFormatError:
        return TaskFormatError(f"{self.source}: {message}")

    def decoded(self, name: str, required: bool, max_bytes: int = MAX_RECORD_BYTES) -> Any:
        """Return a field's value, decoding it when it is a JSON string of a structured value, once its
        nesting and size are known to be within the limits."""
        if name not in self.record or self.record[name] is None:
            if required:
                raise self.fail(f"missing required field '{name}'")
            return None
        value = self.record[name]
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise self.fail(f"{name} is a string but not valid JSON ({exc})") from None
        self.check_extent(name, value, max_bytes)
        return value

    def check_extent(self, name: str, value: Any, max_bytes: int) -> None:
        """Refuse a value nested deeper than MAX_JSON_DEPTH, or with too many elements to fit ``max_bytes``
        (each element takes two bytes or more), before anything recurses through it."""
        max_items = max_bytes // 2
        depth, items = json_extent(value, MAX_JSON_DEPTH, max_items)
        if depth > MAX_JSON_DEPTH:
            exact, items = json_extent(value, 2**62, max_items)
            measured = f"{exact}" if items <= max_items else f"at least {exact}"
            raise self.fail(
                f"{name} is nested {measured} levels deep, more than MAX_JSON_DEPTH={MAX_JSON_DEPTH} "
                "(ftrl_gym.parsing); flatten it"
            )
        if items > max_items:
            limit = "MAX_STATE_BYTES" if max_bytes == MAX_STATE_BYTES else "MAX_RECORD_BYTES"
            raise self.fail(
                f"{name} holds more than {max_items} values, so more than {limit}={max_bytes} bytes of JSON"
            )

    def build(self) -> TaskRecord:
        messages = self.messages()
        tools = self.tools()
        names = [tool["function"]["name"] for tool in tools]
        scorer_spec, scorer = self.scorer()
        user_turns = self.user_turns()
        codes = self.codes(names, scored=scorer is not None)
        entry_points = self.entry_points(names, codes)
        unsolved = self.unsolved_set(names)
        state, state_json = self.state()
        if state is not None:
            self.check_state_keyword(tools)
        extra = {k: v for k, v in self.record.items() if k not in _KNOWN_FIELDS}
        for key, value in extra.items():
            self.check_extent(f"field {key!r}", value, MAX_RECORD_BYTES)
        record = TaskRecord(
            messages=messages,
            tools=tools,
            codes=codes,
            unsolved_set=unsolved,
            solve_rate=self.solve_rate(),
            answer=self.optional_text("answer", allow_numbers=True),
            data_source=self.optional_text("data_source"),
            split=self.optional_text("split"),
            scenario=self.scenario(),
            state=state,
            solution=self.solution(names),
            entry_points=entry_points,
            scorer=scorer_spec,
            user_turns=user_turns,
            tools_added=self.tools_added(names, len(user_turns)),
            hidden_tools_run=self.flag("hidden_tools_run"),
            extra=extra,
        )
        self.check_size()
        record.__dict__["state_json"] = state_json  # the cached_property, encoded once here
        record.__dict__["call_scorer"] = scorer  # built (and so checked) once here
        return record

    def check_size(self) -> None:
        """Refuse a record whose fields, its state excepted, take more than MAX_RECORD_BYTES as JSON."""
        if self.line_bytes is not None and self.line_bytes * _MAX_EXPANSION <= MAX_RECORD_BYTES:
            return  # a short line cannot hold more: no need to encode the record again to measure it
        sizes = {}
        for name, value in self.record.items():
            if name != "state" and value is not None:
                sizes[name] = self.json_bytes(name, value)
        total = sum(sizes.values())
        if total > MAX_RECORD_BYTES:
            largest = max(sizes, key=sizes.__getitem__)
            raise self.fail(
                f"the record is {total} bytes of JSON without its state ({largest} {sizes[largest]}), more "
                f"than MAX_RECORD_BYTES={MAX_RECORD_BYTES}; shorten {largest} or split the task"
            )

    def json_bytes(self, name: str, value: Any) -> int:
        """UTF-8 bytes of a field as JSON (of the text itself for a string: a JSON-string field's JSON)."""
        try:
            text = value if isinstance(value, str) else _COMPACT_TEXT.encode(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise self.fail(f"{name} must hold only JSON values: {exc}") from None
        return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))

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

    def codes(self, names: Sequence[str], scored: bool) -> dict[str, str]:
        codes = self.decoded("codes", required=True)
        if not isinstance(codes, dict):
            raise self.fail(f"codes must map tool names to Python source, got {_kind(codes)}")
        for name, source in codes.items():
            if not isinstance(source, str):
                raise self.fail(f"codes[{name!r}] must be Python source text, got {_kind(source)}")
        for name in names:
            if name not in codes and not scored:
                raise self.fail(
                    f"tool {name!r} is in tools but has no entry in codes (only a task with a scorer may "
                    "list tools without code)"
                )
        listed = set(names)
        for name in codes:
            if name not in listed:
                raise self.fail(
                    f"codes[{name!r}] is not a tool in tools, so no agent could call it; "
                    "add its schema to tools or remove it from codes"
                )
        return codes

    def entry_points(self, names: Sequence[str], codes: Mapping[str, str]) -> dict[str, str]:
        """Check that every tool with code runs through a plain identifier its code defines."""
        entry_points = self.decoded("entry_points", required=False) or {}
        if not isinstance(entry_points, dict):
            raise self.fail(f"entry_points must map tool names to function names, got {_kind(entry_points)}")
        for name, function in entry_points.items():
            if name not in names:
                raise self.fail(f"entry_points[{name!r}] is not a tool in tools")
            if not _plain_identifier(function):
                raise self.fail(
                    f"entry_points[{name!r}] must be a Python identifier that does not start with '_' "
                    f"or is a keyword, got {function!r}"
                )
        runners: dict[str, str] = {}
        for name in names:
            if name not in codes:
                continue
            function = entry_points.get(name, name)
            if not _plain_identifier(function):
                raise self.fail(
                    f"tool {name!r} is not a Python identifier a function could have (or starts with '_'); "
                    f'map it to the function that runs it: "entry_points": {{"{name}": "a_function_name"}}'
                )
            if function in runners:
                raise self.fail(f"tools {runners[function]!r} and {name!r} both run the function {function!r}")
            runners[function] = name
            if not _defines(codes[name], function):
                raise self.fail(
                    f"the code of tool {name!r} does not define {function!r} at its top level "
                    "(a def, class or assignment), so a call could not run it"
                )
        return entry_points

    def user_turns(self) -> list[list[dict[str, Any]]]:
        """Later user turns: each a list of chat messages (possibly empty)."""
        turns = self.decoded("user_turns", required=False) or []
        if not isinstance(turns, list):
            raise self.fail(f"user_turns must be a list of turns (lists of chat messages), got {_kind(turns)}")
        for t, turn in enumerate(turns):
            if not isinstance(turn, list) or not all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) for m in turn):
                raise self.fail(f"user_turns[{t}] must be a list of objects with a string 'role'")
        return turns

    def flag(self, name: str) -> bool:
        """An optional true/false field (absent: false)."""
        value = self.decoded(name, required=False)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(f"{name} must be true or false, got {_kind(value)}")
        return value

    def tools_added(self, names: Sequence[str], turns: int) -> dict[int, list[str]]:
        """User turn (1..turns, a JSON key) → tool names first offered then."""
        added = self.decoded("tools_added", required=False) or {}
        if not isinstance(added, dict):
            raise self.fail(f"tools_added must map a user turn to tool names, got {_kind(added)}")
        out: dict[int, list[str]] = {}
        for key, tools in added.items():
            turn = int(key) if isinstance(key, str) and key.isdigit() else None
            if turn is None or not 1 <= turn <= turns:
                raise self.fail(f"tools_added key {key!r} must be a user turn from 1 to {turns} (len(user_turns))")
            if not isinstance(tools, list) or not all(name in names for name in tools):
                raise self.fail(f"tools_added[{key!r}] must list tools of tools, got {json.dumps(tools)[:200]}")
            out[turn] = list(tools)
        return out

    def check_state_keyword(self, tools: Sequence[Mapping[str, Any]]) -> None:
        """Refuse a stateful task whose tool declares a parameter named like the state keyword."""
        for i, tool in enumerate(tools):
            parameters = tool["function"].get("parameters")
            properties = parameters.get("properties") if isinstance(parameters, dict) else None
            if isinstance(properties, dict) and STATE_KEYWORD in properties:
                raise self.fail(
                    f"tools[{i}] {tool['function']['name']!r} declares a parameter named {STATE_KEYWORD!r}, "
                    f"but every tool of a stateful task receives the world state as {STATE_KEYWORD!r}; "
                    "rename the parameter"
                )

    def scorer(self) -> tuple[dict[str, Any] | None, CallScorer | TurnScorer | None]:
        """The scorer spec and the scorer built from it (None, None without one)."""
        spec = self.decoded("scorer", required=False)
        if spec is None:
            return None, None
        try:
            return spec, build_scorer(spec)
        except ScorerSpecError as exc:
            raise self.fail(str(exc)) from None

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

    def state(self) -> tuple[dict[str, Any] | None, str | None]:
        """The state and its compact JSON, encoded here once for every episode of the record."""
        value = self.decoded("state", required=False, max_bytes=MAX_STATE_BYTES)
        if value is None:
            return None, None
        if not isinstance(value, dict):
            raise self.fail(f"state must be a JSON object, got {_kind(value)}")
        try:
            encoded = json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise self.fail(f"state must hold only JSON values (it travels to the sandbox as JSON): {exc}") from None
        if len(encoded) > MAX_STATE_BYTES:
            raise self.fail(
                f"state is {len(encoded)} bytes of JSON, more than MAX_STATE_BYTES={MAX_STATE_BYTES}; "
                "keep the world state a tool needs and leave out the rest"
            )
        return value, encoded

    def solution(self, names: Sequence[str]) -> list[list[dict[str, Any]]] | None:
        turns = self.decoded("solution", required=False)
        if turns is None:
            return None
        if not isinstance(turns, list):
            raise self.fail(f"solution must be a list of turns, got {_kind(turns)}")
        for t, turn in enumerate(turns):
            if not isinstance(turn, list):
                raise self.fail(f"solution[{t}] must be a list of calls (empty: a turn answered in text)")
            for c, call in enumerate(turn):
                where = f"solution[{t}][{c}]"
                if not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
                    raise self.fail(f"{where} must be {{\"name\": ..., \"arguments\": {{...}}}}")
                if call.get("name") not in names:
                    raise self.fail(f"{where} calls '{call.get('name')}', which is not in tools")
        return turns


def _plain_identifier(name: Any) -> bool:
    """A name a tool function can have: an identifier, not a keyword, not starting with ``_``."""
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


def _defines(source: str, function: str) -> bool:
    """Whether a tool's source binds ``function`` at module level: a line ``def function(`` (the
    usual case, found without parsing) or any top-level def, class, assignment or import."""
    if re.search(rf"^def {function}\(", source, re.MULTILINE):
        return True
    return function in _top_level_names(source)


def _top_level_names(source: str) -> set[str]:
    """Names a tool's source binds at module level (empty when it does not parse: the sandbox then
    reports the syntax error)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


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
        TaskFormatError: A line is not UTF-8 or not JSON, or a record is invalid or past a limit
            (:data:`~ftrl_gym.parsing.MAX_JSON_DEPTH`, :data:`MAX_RECORD_BYTES`,
            :data:`MAX_STATE_BYTES`). The message names the file and line (``tasks.jsonl:17``) or the
            list index (``records[3]``), the field, and the limit with the value that broke it.
        FileNotFoundError: The path does not exist.
    """
    if isinstance(source, (str, os.PathLike)):
        return _load_file(Path(source), str(source))
    records = []
    for i, item in enumerate(source):
        # a TaskRecord built by hand has not been checked against the limits: it is checked like a dict
        record = item.to_dict(json_strings=False) if isinstance(item, TaskRecord) else item
        records.append(TaskRecord.from_dict(record, f"records[{i}]"))
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
        records.append(_Validator(record, where, len(raw)).build())
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
