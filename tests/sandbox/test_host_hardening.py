"""Host-side hardening: the host trusts nothing an episode process sends or does (issue 20, Build 4)."""

from __future__ import annotations

import socket
import time

from sandbox_limits import TIMEOUT_S

from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall
from ftrl_gym.sandbox.protocol import write_until
from ftrl_gym.sandbox.results import MAX_JSON_DEPTH, TRUNCATION_MARKER


def one(sandbox: Sandbox, source: str, name: str = "t") -> object:
    with sandbox.open_session({name: source}) as session:
        [result] = session.call([ToolCall(name, {})])
    return result


def test_a_str_subclass_cannot_lie_about_its_length() -> None:
    source = ("class Liar(str):\n    def __len__(self):\n        return 1\n\n"
              "def t():\n    return Liar('x' * 100000)\n")
    with Sandbox(SandboxConfig(timeout_s=TIMEOUT_S, output_limit=1000)) as box:
        result = one(box, source)
    assert result.ok and type(result.text) is str
    assert result.text == "x" * 1000 + TRUNCATION_MARKER.format(omitted=99000) and result.value is None


def test_lone_surrogates_never_reach_the_observation(sandbox: Sandbox) -> None:
    result = one(sandbox, "def t():\n    return 'a' + chr(0xD800) + 'b'\n")
    assert result.ok and result.text == "a?b"
    result.text.encode("utf-8")  # strict: a tokenizer or log writer can take it


def test_a_huge_result_is_cut_inside_the_episode_process() -> None:
    with Sandbox(SandboxConfig(timeout_s=TIMEOUT_S, output_limit=4096)) as box:
        start = time.monotonic()
        result = one(box, "def t():\n    return 'é' * (50 * 1024 * 1024)\n")
    assert result.ok and result.value is None
    assert result.text.startswith("é" * 2048) and result.text.endswith("bytes of tool output]")
    assert len(result.text.encode()) <= 4096 + 64
    assert time.monotonic() - start < TIMEOUT_S + 5


def test_deep_results_are_text_not_crashes(sandbox: Sandbox) -> None:
    for depth, rebuilt in ((MAX_JSON_DEPTH, True), (MAX_JSON_DEPTH + 1, False), (5000, False)):
        source = f"def t():\n    v = 1\n    for _ in range({depth}):\n        v = [v]\n    return v\n"
        result = one(sandbox, source)
        if depth > 900:  # deeper than json.dumps itself can go: the tool's own error, reported as such
            assert not result.ok and "RecursionError" in result.error
            continue
        assert result.ok, result.error
        assert result.text == "[" * depth + "1" + "]" * depth
        assert (result.value is not None) == rebuilt


def test_a_write_to_a_process_that_stops_reading_has_a_deadline() -> None:
    host, stuck = socket.socketpair()
    host.setblocking(False)
    try:
        start = time.monotonic()
        assert write_until(host.fileno(), b"x" * (16 << 20), time.monotonic() + 0.3) is False
        assert 0.25 < time.monotonic() - start < 10  # a blocking write would never return
    finally:
        host.close()
        stuck.close()


def test_a_call_larger_than_the_socket_buffer_reaches_a_reading_process(sandbox: Sandbox) -> None:
    with sandbox.open_session({"size": "def size(blob):\n    return len(blob)\n"}) as session:
        [result] = session.call([ToolCall("size", {"blob": "z" * (8 << 20)})])
    assert result.ok and result.value == 8 << 20
