"""An episode process's request loop (forked by the zygote; it serves exactly one session).

Frames in: the setup ``[codes, stateful, seed, compiled]`` (a stateful session's world state is already in
the process: the zygote decoded it and forked the process with it), then ``compiled`` frames of
``name NUL marshal((code, error))`` from the sandbox's compiler process; then ``["call", [[name, arguments], ...]]`` or ``["state"]``.
Frames out: one call reply per call (``protocol.encode_reply``), sent as each call ends;
``[true, data]`` or ``[false, message]`` for ``state``.
"""

from __future__ import annotations

import decimal
import json
import marshal
from typing import Any

from ftrl_gym.sandbox import limits, messages
from ftrl_gym.sandbox.protocol import ERROR, FrameReader, encode_reply, loads_exact, write_all, write_frame
from ftrl_gym.sandbox.runtime import ToolSession, compile_source

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_dumps_state = json.JSONEncoder(separators=(",", ":"), default=str).encode


class EpisodeWorker:
    """Runs one session's calls; a setup failure turns every call into its error line."""

    def __init__(self, fd: int, settings: dict[str, Any], inherited: Any = None) -> None:
        self.reader = FrameReader(fd)
        self.fd = fd
        self.timeout_s = float(settings["timeout_s"])
        self.output_limit = int(settings["output_limit"])
        self.memory_mb = int(settings["memory_mb"])
        self.restricted = bool(settings["language_barrier"])
        self.cpu = limits.CpuBudget()
        self.session: ToolSession | None = None
        self.setup_error = ""
        self.inherited = inherited

    def setup(self) -> bool:
        """Read the setup (and state) frames; False at end of input."""
        frame = self.reader.read()
        if frame is None:
            return False
        codes, stateful, seed, compiled = loads_exact(frame.decode())
        precompiled = {}
        for _ in range(compiled):
            piece = self.reader.read()
            if piece is None:
                return False
            name, _, payload = piece.partition(b"\0")
            precompiled[name.decode("utf-8")] = marshal.loads(payload)
        data = None
        if stateful:
            if self.inherited is None:
                self.setup_error = "the episode state did not reach its process"
            else:
                data, self.setup_error = self.inherited.data, self.inherited.error
        self.session = ToolSession(codes, stateful, data, seed, self.memory_mb, restricted=self.restricted,
                                   precompiled=precompiled)
        decimal.setcontext(self.session.decimal_context)  # explicit values, not the shared DefaultContext
        return True

    def serve(self) -> None:
        """Answer requests until the host closes the socket."""
        if not self.setup():
            return
        while True:
            frame = self.reader.read()
            if frame is None:
                return
            request = loads_exact(frame.decode())
            if request[0] == "call":
                self._call(request[1])
            elif request[0] == "state":
                self._state()

    def _call(self, calls: list[list[Any]]) -> None:
        session = self.session
        assert session is not None
        self.cpu.allow(self.timeout_s * len(calls) + 1)
        for name, arguments in calls:
            if self.setup_error:
                frame = encode_reply(ERROR, messages.not_loaded(str(name), self.setup_error).encode(), 0.0)
            else:
                frame = encode_reply(*session.call(name, arguments, self.output_limit))
            write_all(self.fd, frame)

    def _state(self) -> None:
        try:
            if self.setup_error:
                raise ValueError(self.setup_error)
            assert self.session is not None
            self.cpu.allow(self.timeout_s + 1)
            payload = _dumps_state([True, self.session.data]).encode()
        except BaseException as exc:  # noqa: BLE001 - the state may hold tool-made objects
            payload = _dumps([False, f"{type(exc).__name__}: {exc}"[:300]]).encode()
        write_frame(self.fd, payload)


def serve_episode(fd: int, settings: dict[str, Any], inherited: Any = None) -> None:
    """Serve one episode on ``fd`` until the host closes it.

    Args:
        fd: the episode's end of its socket to the host.
        settings: ``timeout_s``, ``memory_mb``, ``output_limit``, ``language_barrier``.
        inherited: the world state the zygote decoded before forking (``zygote.DecodedState``); None
            when the state comes in its own frame.
    """
    EpisodeWorker(fd, settings, inherited).serve()


def serve_compiler(fd: int, settings: dict[str, Any]) -> None:
    """The compiler process's loop: ``[name, source]`` in, ``marshal((code, error))`` out, until the host
    closes the socket. It compiles and never runs tool code; the host caches what it answers.

    Args:
        fd: its end of its socket to the host.
        settings: ``language_barrier`` (False compiles plain Python, for the assume-broken tests).
    """
    reader = FrameReader(fd)
    restricted = bool(settings["language_barrier"])
    while (frame := reader.read()) is not None:
        name, source = loads_exact(frame.decode("utf-8"))
        try:
            result = compile_source(name, source, restricted)
        except MemoryError:
            result = (None, "MemoryError: the source is too large to compile")
        write_frame(fd, marshal.dumps(result))
