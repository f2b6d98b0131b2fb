"""One episode's view of the sandbox: batched calls, the world state, and recovery from dead workers."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Self

from ftrl_gym.errors import EpisodeStateLostError, SandboxError
from ftrl_gym.sandbox import messages
from ftrl_gym.sandbox.config import ToolCall, ToolResult
from ftrl_gym.sandbox.process import WorkerDied, WorkerProcess, WorkerTimeout
from ftrl_gym.sandbox.protocol import dumps_compact

_dumps = dumps_compact


def _error(line: str, elapsed_s: float = 0.0) -> ToolResult:
    return ToolResult(ok=False, text=line, value=None, error=line, elapsed_s=elapsed_s)


class SandboxSession:
    """The tools (and, for a stateful task, the world state) of one episode, living in one worker.

    Created by :meth:`Sandbox.open_session`. Tool module globals are fresh per session, so nothing a
    tool does reaches another episode. A stateless session survives the death of its worker (it is
    re-opened on the replacement); a stateful one loses its state (:attr:`state_lost`).
    """

    def __init__(self, worker: WorkerProcess, sid: int, codes_json: str, state_json: str | None,
                 seed: int | None, tool_names: list[str], owner: object = None) -> None:
        self._owner = owner  # keeps the Sandbox (and so its workers) alive while the session is used
        self._worker = worker
        self._sid = sid
        self._stateful = state_json is not None
        self._initial_state = state_json
        self._setup: bytes | None = (
            f'[{codes_json},{"true" if self._stateful else "false"},'
            f'{state_json if self._stateful else "null"},{_dumps(seed)}]').encode()
        self._tool_names = tool_names
        self._generation: int | None = None  # worker generation the session was set up on
        self._lost = False
        self._closed = False

    @property
    def stateful(self) -> bool:
        """Whether calls receive the episode's world state as ``data``."""
        return self._stateful

    @property
    def state_lost(self) -> bool:
        """True once a worker died holding this session's state; later calls return error results."""
        if self._stateful and self._generation is not None and self._generation != self._worker.generation:
            self._lost = True
        return self._lost

    @property
    def tool_names(self) -> list[str]:
        """The names of the session's tools."""
        return list(self._tool_names)

    def call(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run a batch of calls in order, in one round trip; one result per call. What the tools do
        never raises: failures are results with ``ok=False``.

        Raises:
            SandboxError: only for the infrastructure: a replacement worker cannot be started, or the
                sandbox was closed.
        """
        calls = list(calls)
        if not calls:
            return []
        with self._worker.lock:
            return self._call_locked(calls)

    def _call_locked(self, calls: list[ToolCall]) -> list[ToolResult]:
        if self._closed:
            return [_error(messages.session_closed(str(c.name))) for c in calls]
        if self.state_lost:
            return [_error(messages.state_lost(str(c.name))) for c in calls]
        body = None
        if _all_plain(calls):
            try:
                body = _dumps([[c.name, c.arguments] for c in calls])
            except (TypeError, ValueError, RecursionError):
                pass  # some arguments are not JSON: sort the calls out one by one below
        if body is not None:
            return self._exchange(calls, body)
        results: list[ToolResult | None] = [None] * len(calls)
        sendable: list[int] = []
        encoded: list[str] = []
        for index, item in enumerate(calls):
            piece, problem = _encode_call(item, self._tool_names)
            if problem is not None:
                results[index] = _error(problem)
            else:
                sendable.append(index)
                encoded.append(piece)
        if sendable:
            replies = self._exchange([calls[i] for i in sendable], "[" + ",".join(encoded) + "]")
            for index, result in zip(sendable, replies, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    def _exchange(self, calls: list[ToolCall], body: str) -> list[ToolResult]:
        """Send the encoded batch and collect one reply per call, recovering from a dead worker."""
        worker = self._worker
        worker.ensure_running()
        if worker.pending_drops:
            self._flush_drops()
        fresh = self._generation != worker.generation
        setup = self._setup if fresh else b"null"
        payload = b'["call",%d,%s,%s]' % (self._sid, body.encode(), setup)
        try:
            worker.send(payload)
        except WorkerDied:
            worker.restart()
            return self._call_locked(calls)
        self._generation = worker.generation
        if self._stateful:
            self._setup = self._initial_state = None  # the state lives in the worker now
        results: list[ToolResult] = []
        timeout = worker.config.timeout_s
        for call in calls:
            sent = time.perf_counter()
            try:
                ok, text, value, elapsed = worker.receive_reply(timeout)
                results.append(ToolResult(ok, text, value, None if ok else text, elapsed))
                continue
            except WorkerTimeout:
                line = messages.timed_out(call.name, timeout)
            except WorkerDied as died:
                line = messages.crashed(call.name, died.returncode)
            results.append(_error(line, time.perf_counter() - sent))
            worker.restart()
            rest = calls[len(results):]
            if rest:
                results.extend(self._call_locked(rest))
            break
        return results

    def _flush_drops(self) -> None:
        worker = self._worker
        while worker.pending_drops:
            sid = worker.pending_drops.pop()
            try:
                worker.send(b'["drop",%d]' % sid)
            except (WorkerDied, SandboxError):
                return

    def get_state(self) -> Any:
        """A copy of the episode's world state (None for a stateless session).

        Raises:
            EpisodeStateLostError: the worker holding the state died (a call timed out or crashed).
            SandboxError: the session is closed, or the state can no longer be serialised.
        """
        if not self._stateful:
            return None
        with self._worker.lock:
            if self._closed:
                raise SandboxError("get_state() on a closed sandbox session")
            if self.state_lost:
                raise EpisodeStateLostError("the episode state was lost when its sandbox worker died")
            if self._generation is None:
                return json.loads(self._initial_state or "null")
            return self._read_state()

    def _read_state(self) -> Any:
        worker = self._worker
        worker.ensure_running()
        if self.state_lost:
            raise EpisodeStateLostError("the episode state was lost when its sandbox worker died")
        try:
            worker.send(b'["state",%d]' % self._sid)
            reply = worker.receive(worker.config.timeout_s)
        except (WorkerTimeout, WorkerDied):
            worker.restart()
            self._lost = True
            raise EpisodeStateLostError("the episode state was lost: its sandbox worker died "
                                        "while reading it back") from None
        if not (isinstance(reply, list) and len(reply) == 2 and reply[0] is True):
            detail = reply[1] if isinstance(reply, list) and len(reply) == 2 else "malformed reply"
            raise SandboxError(f"the episode state cannot be read back: {detail}")
        return reply[1]

    def close(self) -> None:
        """Free the session in its worker. Later calls return error results (idempotent)."""
        with self._worker.lock:
            if self._closed:
                return
            self._closed = True
            self._worker.open_sessions -= 1
            if self._generation == self._worker.generation:
                self._worker.pending_drops.append(self._sid)
                self._flush_drops()
            self._setup = None
            self._initial_state = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError("a SandboxSession cannot be pickled: its tools and state live in a worker "
                        "process; pickle the task and open a new session instead")


def _encode_call(call: ToolCall, tool_names: list[str]) -> tuple[str, str | None]:
    """The JSON of one call, or the error line explaining why it cannot be sent."""
    name = call.name
    if not isinstance(name, str):
        return "", messages.unknown_tool(repr(name), tool_names)
    arguments = call.arguments
    if not isinstance(arguments, dict):
        if arguments is None:
            arguments = {}
        else:
            detail = f"arguments must be a JSON object, got {type(arguments).__name__}"
            return "", messages.bad_arguments(name, detail)
    try:
        return _dumps([name, arguments]), None
    except (TypeError, ValueError, RecursionError) as exc:
        return "", messages.bad_arguments(name, f"arguments are not JSON-serialisable ({exc})")


def _all_plain(calls: list[ToolCall]) -> bool:
    """Whether every call has a str name and dict arguments (the batch can be encoded in one go)."""
    for call in calls:
        if type(call.name) is not str or type(call.arguments) is not dict:
            return False
    return True

