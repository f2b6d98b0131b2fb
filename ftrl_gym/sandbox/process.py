"""Parent side of one worker process: start it, exchange frames under a deadline, kill and replace it."""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ftrl_gym.errors import SandboxError
from ftrl_gym.sandbox.config import SandboxConfig
from ftrl_gym.sandbox.protocol import FrameReader, ProtocolError, decode_reply, write_frame

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
"""The directory holding ``ftrl_gym``: the worker's working directory and only ``PYTHONPATH`` entry."""

BOOTSTRAP = str(Path(__file__).with_name("bootstrap.py"))
"""The script a worker process runs (see ``bootstrap.py``)."""

MAX_REPLY_BYTES = 1 << 30
"""Largest frame the parent accepts from a worker (a state read back can be large; results are capped)."""


_forks = [0]
"""How many times this process is a forked child of a process that held workers (bumped at fork)."""
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


class WorkerTimeout(Exception):
    """The worker did not answer before the deadline."""


class WorkerDied(Exception):
    """The worker process exited, closed its pipe or sent garbage."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"sandbox worker died (return code {returncode})")
        self.returncode = returncode


class WorkerProcess:
    """One persistent worker; ``generation`` grows each time the process is replaced.

    The caller holds ``lock`` around every exchange, so that two sessions never interleave frames.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.generation = 0
        self.open_sessions = 0
        self.pending_drops: list[int] = []
        self.network_isolated = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: FrameReader | None = None
        self._poller = select.poll()
        self._write_fd = -1
        self._deadline = 0.0
        self._owner = _forks[0]
        self._ready = False
        self.closed = False
        self._spawn()

    @property
    def pid(self) -> int | None:
        """The current process id, None when not running."""
        return None if self._proc is None else self._proc.pid

    def _spawn(self) -> None:
        settings = {"timeout_s": self.config.timeout_s, "memory_mb": self.config.memory_mb,
                    "output_limit": self.config.output_limit, "isolate_network": self.config.isolate_network}
        argv = [sys.executable, "-s", "-B", BOOTSTRAP, PACKAGE_ROOT, json.dumps(settings)]
        env = {"PATH": os.defpath, "PYTHONPATH": PACKAGE_ROOT, "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env, cwd=PACKAGE_ROOT, close_fds=True,
                                          start_new_session=True, bufsize=0)
        except OSError as exc:
            raise SandboxError(f"cannot start a sandbox worker ({sys.executable}): {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._write_fd = self._proc.stdin.fileno()
        self._reader = FrameReader(self._proc.stdout.fileno(), MAX_REPLY_BYTES)
        self._poller = select.poll()
        self._poller.register(self._reader.fd, select.POLLIN)
        self._ready = False
        self.generation += 1

    def wait_ready(self) -> None:
        """Wait for the worker's ready frame (once per process; :meth:`send` calls this first).

        Raises:
            SandboxError: the worker exited or stayed silent past ``startup_timeout_s``; the message
                carries the end of its stderr.
        """
        if self._ready:
            return
        try:
            ready = self.receive(self.config.startup_timeout_s)
            if not (isinstance(ready, list) and ready[:1] == ["ready"]):
                raise WorkerDied(None)
        except (WorkerTimeout, WorkerDied) as exc:
            detail = self._stderr_tail()
            self.kill()
            raise SandboxError(f"cannot start a sandbox worker: {exc}. {detail}".strip()) from None
        self.network_isolated = bool(ready[2])
        assert self._proc is not None and self._proc.stderr is not None
        self._proc.stderr.close()
        self._ready = True

    def _stderr_tail(self) -> str:
        if self._proc is None or self._proc.stderr is None or self._proc.stderr.closed:
            return ""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        text = self._proc.stderr.read().decode("utf-8", "replace").strip()
        return f"Worker stderr: {text[-2000:]}" if text else ""

    def ensure_running(self) -> None:
        """Make sure a ready worker exists: start one if there is none (or this is a forked copy of the
        process that started the current one) and wait for a starting one. Call before :meth:`send`,
        and read :attr:`generation` after it.

        Raises:
            SandboxError: the sandbox is closed, or a worker cannot be started.
        """
        if _forks[0] != self._owner:
            self._disown()
        if self._proc is None:
            if self.closed:
                raise SandboxError("the sandbox is closed")
            self._spawn()
        if not self._ready:
            try:
                self.wait_ready()
            except SandboxError:
                if self.closed:
                    raise
                self._spawn()  # one more try: a starting replacement can be killed from outside
                self.wait_ready()

    def send(self, payload: bytes) -> None:
        """Send one frame.

        Raises:
            WorkerDied: the worker is gone (or was never started: see :meth:`ensure_running`).
        """
        if _forks[0] != self._owner or not self._ready:
            raise WorkerDied(None)
        try:
            write_frame(self._write_fd, payload)
        except OSError:
            raise WorkerDied(self._returncode()) from None

    def receive(self, timeout_s: float) -> Any:
        """Wait at most ``timeout_s`` for the next frame and decode it as JSON.

        Raises:
            WorkerTimeout: nothing complete arrived in time.
            WorkerDied: end of file, or a frame that is not valid JSON.
        """
        try:
            return json.loads(self.receive_raw(timeout_s))
        except (ValueError, RecursionError):
            raise WorkerDied(self._returncode()) from None

    def receive_reply(self, timeout_s: float) -> tuple[bool, str, Any, float]:
        """Wait at most ``timeout_s`` for one call's reply: ``(ok, text, value, elapsed_s)``.

        Raises:
            WorkerTimeout: nothing complete arrived in time.
            WorkerDied: end of file, or a malformed reply.
        """
        try:
            return decode_reply(self.receive_raw(timeout_s))
        except ProtocolError:
            raise WorkerDied(self._returncode()) from None

    def receive_raw(self, timeout_s: float) -> bytes:
        """Wait at most ``timeout_s`` for the next frame's payload.

        Raises:
            WorkerTimeout: nothing complete arrived in time.
            WorkerDied: end of file or an oversized frame.
        """
        self._deadline = time.monotonic() + timeout_s
        if self._reader is None:
            raise WorkerDied(None)
        try:
            frame = self._reader.read(self._wait)
        except (ProtocolError, OSError):
            frame = None
        if frame is None:
            raise WorkerDied(self._returncode())
        return frame

    def _wait(self) -> None:
        """Block until the pipe is readable; raise :class:`WorkerTimeout` once the deadline has passed."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0 or not self._poller.poll(math.ceil(remaining * 1000)):
            raise WorkerTimeout()

    def _returncode(self) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return None

    def _disown(self) -> None:
        """In a forked child: forget the parent's worker without touching it, so the child starts its own."""
        proc, self._proc = self._proc, None
        self._reader, self._write_fd, self._ready = None, -1, False
        self._owner = _forks[0]
        if proc is not None:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None and not stream.closed:
                    with contextlib.suppress(OSError):
                        stream.close()
            proc.returncode = -1  # not our child: never wait for it

    def restart(self) -> None:
        """Kill the process (if alive) and start a fresh one without waiting for it: its startup overlaps
        whatever the caller does next, and the next :meth:`send` waits. Sessions opened before re-open."""
        self.kill()
        self.pending_drops.clear()
        if not self.closed:
            self._spawn()

    def close(self) -> None:
        """Kill the process for good: later sends raise :class:`SandboxError`."""
        self.closed = True
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process, reap it and close the pipes (idempotent; a forked copy only forgets it)."""
        if _forks[0] != self._owner:
            self._disown()
            return
        proc, self._proc = self._proc, None
        self._reader, self._write_fd, self._ready = None, -1, False
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    pass
