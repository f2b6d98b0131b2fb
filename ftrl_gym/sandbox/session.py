"""One episode's view of the sandbox: its own process, batched calls, the world state, recovery."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any, Self

from ftrl_gym.errors import EpisodeStateLostError, SandboxError
from ftrl_gym.sandbox import messages
from ftrl_gym.sandbox.compile_cache import CompileCache
from ftrl_gym.sandbox.config import ToolCall, ToolResult
from ftrl_gym.sandbox.process import EpisodeProcess, WorkerDied, WorkerTimeout, Zygote, forked
from ftrl_gym.sandbox.protocol import dumps_compact

_dumps = dumps_compact

SETUP_ATTEMPTS = 3
"""Fresh episode processes tried before a session gives up (one killed from outside is replaced)."""


def _error(line: str, elapsed_s: float = 0.0) -> ToolResult:
    return ToolResult(ok=False, text=line, value=None, error=line, elapsed_s=elapsed_s)


class SandboxSession:
    """The tools (and, for a stateful task, the world state) of one episode, in a process of its own.

    Created by :meth:`Sandbox.open_session`. The process is forked from the pristine zygote at the first
    call and killed at :meth:`close`, so nothing of one episode reaches another. If it dies (a timeout, a
    crash, a kill from outside), a stateless session goes on in a fresh process (its module globals start
    afresh); a stateful one has lost its state (:attr:`state_lost`).
    """

    def __init__(self, zygote: Zygote, codes: dict[str, str], state_json: str | None, seed: int | None,
                 compiler: CompileCache, owner: object = None, state_key: str = "") -> None:
        self._owner = owner  # keeps the Sandbox (and so its zygote) alive while the session is used
        self._zygote = zygote
        self._stateful = state_json is not None
        self._codes = codes
        self._seed = seed
        self._compiler = compiler
        self._state_json = state_json
        self._state_key = state_key
        self._tool_names = list(codes)
        self._process: EpisodeProcess | None = None
        self._started = False  # a process received the state
        self._lock = threading.Lock()
        self._lost = False
        self._closed = False

    @property
    def stateful(self) -> bool:
        """Whether calls receive the episode's world state as ``data``."""
        return self._stateful

    @property
    def state_lost(self) -> bool:
        """True once the process holding this session's state died; later calls return error results."""
        process = self._process
        if self._stateful and self._started and (process is None or not process.alive
                                                 or process.owner != forked()):
            self._lost = True
        return self._lost

    @property
    def tool_names(self) -> list[str]:
        """The names of the session's tools."""
        return list(self._tool_names)

    @property
    def pid(self) -> int | None:
        """The host's process id of the episode process (None before the first call and after close)."""
        process = self._process
        live = process is not None and process.alive and process.owner == forked()
        return process.pid if live else None

    def call(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run a batch of calls in order, in one round trip; one result per call. What the tools do
        never raises: failures are results with ``ok=False``.

        Raises:
            SandboxError: only for the infrastructure: the zygote cannot be (re)started, or the sandbox
                was closed.
        """
        calls = list(calls)
        if not calls:
            return []
        with self._lock:
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

    def _live_process(self) -> EpisodeProcess | None:
        """The session's process, forked and set up now if needed; None once a stateful one is lost."""
        process = self._process
        if process is not None and process.alive and process.owner == forked():
            return process
        if self.state_lost:
            return None
        timeout = self._zygote.config.timeout_s
        compiled = self._compiler.compiled(self._codes)
        setup = _dumps([self._codes, self._stateful, self._seed, len(compiled)]).encode("utf-8", "surrogatepass")
        for attempt in range(SETUP_ATTEMPTS):
            if self._stateful:
                state = (self._state_json or "null").encode()
                process = self._zygote.spawn_with_state(self._state_key, state)
            else:
                process = self._zygote.spawn()
            try:
                process.send(setup, timeout)
                for frame in compiled:
                    process.send(frame, timeout)
            except (WorkerDied, WorkerTimeout):
                process.end()
                if attempt == SETUP_ATTEMPTS - 1:
                    raise SandboxError(f"{SETUP_ATTEMPTS} fresh sandbox episode processes in a row died while "
                                       "they were being set up") from None
                continue
            self._process = process
            if self._stateful:
                self._started, self._state_json = True, None  # the state lives in the process now
            return process
        raise AssertionError("unreachable")

    def _exchange(self, calls: list[ToolCall], body: str) -> list[ToolResult]:
        """Send the encoded batch and collect one reply per call, recovering from a dead process."""
        process = self._live_process()
        if process is None:
            return [_error(messages.state_lost(str(c.name))) for c in calls]
        config = self._zygote.config
        try:
            process.send(b'["call",%s]' % body.encode(), config.timeout_s)
        except (WorkerDied, WorkerTimeout):
            process.end()
            return self._call_locked(calls)
        results: list[ToolResult] = []
        for call in calls:
            sent = time.perf_counter()
            try:
                ok, text, value, elapsed = process.receive_reply(config.timeout_s, config.output_limit)
                results.append(ToolResult(ok, text, value, None if ok else text, elapsed))
                continue
            except WorkerTimeout:
                process.end()
                line = messages.timed_out(call.name, config.timeout_s)
            except WorkerDied as died:
                line = messages.crashed(call.name, died.returncode)
            results.append(_error(line, time.perf_counter() - sent))
            rest = calls[len(results):]
            if rest:
                results.extend(self._call_locked(rest))
            break
        return results

    def get_state(self) -> Any:
        """A copy of the episode's world state (None for a stateless session).

        Raises:
            EpisodeStateLostError: the process holding the state died (a call timed out or crashed).
            SandboxError: the session is closed, or the state can no longer be serialised.
        """
        if not self._stateful:
            return None
        with self._lock:
            if self._closed:
                raise SandboxError("get_state() on a closed sandbox session")
            if self.state_lost:
                raise EpisodeStateLostError("the episode state was lost when its sandbox process died")
            if not self._started:
                return json.loads(self._state_json or "null")
            return self._read_state()

    def _read_state(self) -> Any:
        process = self._process
        assert process is not None
        timeout = self._zygote.config.timeout_s
        try:
            process.send(b'["state"]', timeout)
            reply = process.receive_json(timeout)
        except (WorkerTimeout, WorkerDied):
            process.end()
            self._lost = True
            raise EpisodeStateLostError("the episode state was lost: its sandbox process died "
                                        "while reading it back") from None
        if not (isinstance(reply, list) and len(reply) == 2 and reply[0] is True):
            detail = reply[1] if isinstance(reply, list) and len(reply) == 2 else "malformed reply"
            raise SandboxError(f"the episode state cannot be read back: {detail}")
        return reply[1]

    def close(self) -> None:
        """Kill the session's process (nothing it started survives). Later calls return error results
        (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._process is not None:
                self._process.end()
            self._state_json = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError("a SandboxSession cannot be pickled: its tools and state live in a sandbox "
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
