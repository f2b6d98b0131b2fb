"""The hostile corpus: every body is contained, answers in time, leaves the host alone, and the sandbox
keeps serving normal calls."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from hostile_corpus import CASES, Case
from sandbox_limits import TIMEOUT_S

from ftrl_gym.sandbox import Sandbox, ToolCall

NORMAL = "def ok(x):\n    return {'double': x * 2}\n"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}-{c.name}" for c in CASES])
def test_hostile_tool_is_contained(case: Case, sandbox: Sandbox, sentinel: Path) -> None:
    environ = dict(os.environ)
    rng_state = random.getstate()
    session = sandbox.open_session({"t": case.source, "ok": NORMAL})
    try:
        start = time.monotonic()
        [result] = session.call([ToolCall("t", {})])
        elapsed = time.monotonic() - start
        assert case.check(result), f"{case.name}: unexpected result {result!r}"
        assert elapsed <= TIMEOUT_S + 1.0, f"{case.name} took {elapsed:.2f} s"
        assert sentinel.read_text() == "untouched"
        assert dict(os.environ) == environ
        assert random.getstate() == rng_state
        [after] = session.call([ToolCall("ok", {"x": 21})])
        assert after.ok and after.value == {"double": 42}, after
    finally:
        session.close()
    assert not Path("/tmp/pwned").exists()


def test_corpus_is_large_and_covers_every_class() -> None:
    kinds = {c.kind for c in CASES}
    assert len(CASES) >= 50
    assert kinds == {"introspection", "import", "io", "format", "resources", "tampering", "crash"}
