"""Fuzzing tool code: whatever a tool's source is, a call returns one well-formed result and the worker serves on."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
from fuzz_strategies import any_text, json_values
from hypothesis import given
from hypothesis import strategies as st
from reliability_helpers import examples

from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall, ToolResult

CODE_EXAMPLES = 200
"""Examples of the property (times ``FTRL_FUZZ_SCALE``)."""
OUTPUT_LIMIT = 4096
MARKER_ALLOWANCE = 200
"""Bytes a truncation marker may add past the output limit."""

BODY_SNIPPETS = [
    "x = 1", "return x", "return data", "import json\nreturn json.dumps({'a': [1, 2]})", "import os",
    "return os.getcwd()", "return open('/etc/passwd').read()", "__import__('os').system('true')",
    "raise ValueError('boom')", "raise SystemExit(3)", "raise KeyboardInterrupt", "return 1 / 0",
    "return object()", "return {1, 2}", "return float('nan')", "return 10 ** 5000", "return 'é' * 100000",
    "return [[[[[]]]]]", "yield 1", "return lambda: 1", "return type", "return globals()",
    "return ().__class__.__bases__[0].__subclasses__()", "print('x' * 1000)", "return printed",
    "import math\nreturn math.sqrt(-1)", "return int('9' * 5000)", "return b'bytes'", "return None",
    "return {'k': data, 'x': x}", "global g\ng = 1\nreturn g", "class A:\n    pass\nreturn A()",
    "return [i for i in range(10 ** 5)]", "exec('1')", "eval('1 + 1')", "return getattr(x, '__class__')",
    "return str.__dict__", "return f'{x!r:>10}'", "del x", "assert False, 'no'",
    "try:\n    return 1\nfinally:\n    return 2", "return sorted([3, 1, 2])", "return '\\x00\\ud800'",
    "return {'nested': [{'a': (1, 2)}]}", "import random\nreturn random.random() < 2",
    "return {(1, 2): 3}", "return [1] * 10 ** 6", "d = {}\nd['self'] = d\nreturn d", "return ...",
    "return 1e308 * 10", "return -0.0", "return True", "import sys\nreturn sys.modules",
    "import decimal\nreturn decimal.Decimal('1.1')", "import datetime\nreturn datetime.date(2024, 1, 1)",
]
"""Statements a tool body is assembled from: honest ones, hostile ones and plain mistakes."""

HEADERS = ["def t(x=None, data=None):", "def t(*args, **kwargs):", "def t():", "def t(x, /, y=2):",
           "async def t(**kwargs):", "def not_t(**kwargs):", "def t(x=None, data=None) -> dict:"]
MODULE_SNIPPETS = ["", "import json", "x = 1 / 0", "t = 5", "def (", "from os import path",
                   "import collections\nCOUNTER = collections.Counter('abc')", "raise RuntimeError('at import')"]


def tool_source(prefix: str, header: str, body: list[str], noise: str) -> str:
    """Assemble one tool module from a module-level prefix, a ``def`` header, statements and noise."""
    lines = "\n".join(body) or "pass"
    return f"{prefix}\n{header}\n{textwrap.indent(lines, '    ')}\n{noise}"


tool_sources = st.one_of(
    st.builds(tool_source, st.sampled_from(MODULE_SNIPPETS), st.sampled_from(HEADERS),
              st.lists(st.sampled_from(BODY_SNIPPETS), min_size=1, max_size=4), st.just("")),
    st.builds(tool_source, st.sampled_from(MODULE_SNIPPETS), st.sampled_from(HEADERS),
              st.lists(st.sampled_from(BODY_SNIPPETS), max_size=2), any_text(40)),
    any_text(120),
)

HONEST = {"echo": "def echo(x):\n    return {'echo': x}\n"}
ZYGOTE_PIDS: dict[int, int | None] = {}
"""The zygote pid each sandbox started with: no tool code may kill it."""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One worker for every example, with short limits and a small output cap."""
    with Sandbox(SandboxConfig(timeout_s=2.0, memory_mb=256, output_limit=OUTPUT_LIMIT)) as box:
        yield box


def assert_well_formed(result: ToolResult) -> None:
    """An ok result carries capped text; a failure carries one ``error: `` line and no value."""
    assert isinstance(result, ToolResult)
    if result.ok:
        assert isinstance(result.text, str) and result.error is None
        assert len(result.text.encode("utf-8", "surrogatepass")) <= OUTPUT_LIMIT + MARKER_ALLOWANCE
    else:
        assert result.value is None and result.text == result.error
        assert result.error.startswith("error: ") and "\n" not in result.error, result.error


@examples(CODE_EXAMPLES)
@given(source=tool_sources, arguments=st.dictionaries(st.sampled_from(["x", "y", "data", "z"]), json_values,
                                                      max_size=2), stateful=st.booleans())
def test_any_tool_code_gives_one_result_and_the_worker_serves_on(sandbox: Sandbox, source: str,
                                                                 arguments: dict, stateful: bool) -> None:
    state = {"items": [1, 2]} if stateful else None
    with sandbox.open_session({"t": source}, state=state) as session:
        results = session.call([ToolCall("t", arguments), ToolCall("t", {})])
        assert len(results) == 2
        for result in results:
            assert_well_formed(result)
        if stateful and session.state_lost:
            assert "episode state was lost" in (results[1].error or "")
    with sandbox.open_session(HONEST) as honest:
        [result] = honest.call([ToolCall("echo", {"x": "still here"})])
        assert result.ok and result.value == {"echo": "still here"}
    assert sandbox.zygote_pid == ZYGOTE_PIDS.setdefault(id(sandbox), sandbox.zygote_pid), "the zygote survives"
