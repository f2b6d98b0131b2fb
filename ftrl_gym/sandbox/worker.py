"""The worker process (started through ``bootstrap.py``; ``python -m`` works too): serves tool calls.

Frames in (JSON lists):
    ``["call", sid, [[name, arguments], ...], setup]``, setup ``[codes, stateful, data, seed]`` or null
    when the session is already open here; ``["state", sid]``; ``["drop", sid]`` (no reply).
Frames out: one call reply per call (``protocol.encode_reply``), sent as each call ends;
``[true, data]`` or ``[false, message]`` for ``state``; ``["ready", pid, network_isolated]`` at start.
"""

from __future__ import annotations

import decimal
import json
import os
import sys
from typing import Any

from ftrl_gym.sandbox import limits
from ftrl_gym.sandbox.protocol import (
    ERROR,
    FrameReader,
    encode_reply,
    loads_exact,
    write_all,
    write_frame,
)
from ftrl_gym.sandbox.runtime import ToolSession

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_dumps_state = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _take_pipes() -> tuple[int, int]:
    """Move the request/reply pipes off stdin/stdout and point the standard streams at /dev/null."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    os.closerange(max(read_fd, write_fd) + 1, 1 << 16)
    return read_fd, write_fd


class Worker:
    """The request loop: sessions by id, one reply frame per call."""

    def __init__(self, read_fd: int, write_fd: int, config: dict[str, Any]) -> None:
        self.reader = FrameReader(read_fd)
        self.write_fd = write_fd
        self.timeout_s = float(config["timeout_s"])
        self.output_limit = int(config["output_limit"])
        self.memory_mb = int(config["memory_mb"])
        self.sessions: dict[int, ToolSession] = {}
        self.cpu = limits.CpuBudget()
        self._active: ToolSession | None = None

    def serve(self) -> None:
        """Answer requests until the parent closes the pipe."""
        while True:
            frame = self.reader.read()
            if frame is None:
                return
            request = loads_exact(frame.decode())
            op = request[0]
            if op == "call":
                self._call(request[1], request[2], request[3])
            elif op == "state":
                self._state(request[1])
            elif op == "drop" and self.sessions.pop(request[1], None) is self._active:
                self._active = None

    def _activate(self, session: ToolSession) -> None:
        if session is not self._active:
            decimal.setcontext(session.decimal_context)
            self._active = session

    def _call(self, sid: int, calls: list[list[Any]], setup: list[Any] | None) -> None:
        if setup is not None:
            codes, stateful, data, seed = setup
            self.sessions[sid] = ToolSession(codes, stateful, data, seed, self.memory_mb)
        session = self.sessions.get(sid)
        self.cpu.allow(self.timeout_s * len(calls) + 1)
        for name, arguments in calls:
            if session is None:
                line = f"error: tool {name!r} was not run: unknown sandbox session"
                frame = encode_reply(ERROR, line, 0.0)
            else:
                self._activate(session)
                frame = encode_reply(*session.call(name, arguments, self.output_limit))
            write_all(self.write_fd, frame)

    def _state(self, sid: int) -> None:
        session = self.sessions.get(sid)
        try:
            if session is None:
                raise KeyError("unknown sandbox session")
            self.cpu.allow(self.timeout_s + 1)
            payload = _dumps_state([True, session.data]).encode()
        except BaseException as exc:  # noqa: BLE001 - the state may hold tool-made objects
            payload = _dumps([False, f"{type(exc).__name__}: {exc}"[:300]]).encode()
        write_frame(self.write_fd, payload)


def main(settings: str) -> None:
    """Set the process up (pipes, limits), report ready, then serve until end of input.

    Args:
        settings: JSON object with ``timeout_s``, ``memory_mb``, ``output_limit``, ``isolate_network``.
    """
    config = json.loads(settings)
    read_fd, write_fd = _take_pipes()
    worker = Worker(read_fd, write_fd, config)
    isolated = limits.harden(int(config["memory_mb"]), bool(config["isolate_network"]))
    write_frame(write_fd, _dumps(["ready", os.getpid(), isolated]).encode())
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 2)
    os.close(null)
    worker.serve()


if __name__ == "__main__":
    main(sys.argv[1])
