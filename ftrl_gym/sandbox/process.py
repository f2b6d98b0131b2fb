"""Host side of the sandbox's processes: the zygote handle and one handle per episode process.

The host never forks: the zygote is started with ``subprocess`` (inside bubblewrap where available), and
episode processes are forked by the zygote. Every read and write on their sockets has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ftrl_gym.errors import SandboxError
from ftrl_gym.sandbox import boundary
from ftrl_gym.sandbox.config import SandboxConfig
from ftrl_gym.sandbox.protocol import HEADER, FrameReader, ProtocolError, decode_reply, write_until

BOOTSTRAP = str(boundary.SANDBOX_DIR / "bootstrap.py")
"""The script the zygote runs (see ``bootstrap.py``)."""

MAX_STATE_BYTES = 1 << 30
"""Largest state frame the host accepts from an episode process."""

REPLY_SLACK_BYTES = 4096
"""Room above ``output_limit`` for a call reply's head and truncation marker."""

_CREDENTIALS = struct.Struct("3i")
_FD = struct.Struct("i")


def _fds(payload: bytes) -> list[int]:
    """The descriptors of one ``SCM_RIGHTS`` message."""
    usable = len(payload) - len(payload) % _FD.size
    return [fd for (fd,) in _FD.iter_unpack(payload[:usable])]

_forks = [0]
"""How many times this process is a forked child of a process that held sandbox processes."""
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


def forked() -> int:
    """The fork generation of this process (it changes in a forked child)."""
    return _forks[0]


class WorkerTimeout(Exception):
    """The process did not answer (or read) before the deadline."""


class WorkerDied(Exception):
    """The process ended, closed its socket or sent something malformed."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"sandbox process died (return code {returncode})")
        self.returncode = returncode


def _receive_with_pid(sock: socket.socket, size: int, deadline: float) -> tuple[bytes, int | None]:
    """Read exactly ``size`` bytes that the peer sent with ``SCM_CREDENTIALS``; return them and its pid."""
    data, pid = b"", None
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(math.ceil(remaining * 1000)):
            raise WorkerTimeout()
        try:
            chunk, ancillary, _flags, _addr = sock.recvmsg(size - len(data), socket.CMSG_SPACE(_CREDENTIALS.size))
        except BlockingIOError:
            continue
        except OSError:
            raise WorkerDied(None) from None
        if not chunk:
            raise WorkerDied(None)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= _CREDENTIALS.size:
                pid = _CREDENTIALS.unpack_from(payload)[0]
        data += chunk
    return data, pid


_SHUTDOWN = HEADER.pack(12) + b'["shutdown"]'

FORK_ATTEMPTS = 4
"""Episode processes (or zygote restarts) tried before a fork request gives up."""

KILL_WAIT_S = 5.0
"""How long :meth:`Zygote.kill` waits for the processes inside to be gone."""


def _pidfds(pids: list[int]) -> list[int]:
    """Process file descriptors of the live ones among ``pids`` (they become readable at exit)."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except (ProcessLookupError, OSError):
            continue
    return fds


def _wait_all(pidfds: list[int], timeout_s: float) -> None:
    """Wait until every process behind ``pidfds`` has exited (at most ``timeout_s``); close them."""
    deadline = time.monotonic() + timeout_s
    for fd in pidfds:
        try:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                select.select([fd], [], [], remaining)
        finally:
            os.close(fd)


class Zygote:
    """The host's handle of one zygote process; thread-safe.

    Args:
        config: limits and the boundary settings.

    Raises:
        SandboxError: the zygote cannot be started, or a required OS layer is missing.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.generation = 0
        self.layers: dict[str, Any] = {}
        self.pid: int | None = None
        self.closed = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self.episode_pids: set[int] = set()
        self._prefetched: list[tuple[Any, list[int]]] = []
        self._prefetch_pending = False
        self._owner = forked()
        self._start()

    # ---- life cycle -----------------------------------------------------------------------------

    def _command(self, control_fd: int, in_boundary: bool) -> list[str]:
        settings = json.dumps({"timeout_s": self.config.timeout_s, "memory_mb": self.config.memory_mb,
                               "output_limit": self.config.output_limit,
                               "language_barrier": self.config.language_barrier, "in_boundary": in_boundary})
        executable, _roots = boundary.python_paths()
        if in_boundary:
            root = boundary.INSIDE_ROOT
            python = [executable, "-I", "-S", "-B", f"{root}/ftrl_gym/sandbox/bootstrap.py", root, root,
                      str(control_fd), settings]
            return boundary.bwrap_command(str(boundary.bwrap_path()), python)
        import RestrictedPython  # noqa: PLC0415 - only its location is needed

        library = str(boundary.Path(RestrictedPython.__file__).resolve().parent.parent)
        package = str(boundary.SANDBOX_DIR.parent.parent)
        return [sys.executable, "-I", "-S", "-B", BOOTSTRAP, package, library, str(control_fd), settings]

    def _start(self) -> None:
        """Start the zygote inside the boundary; fall back to a plain process (with a warning) or refuse."""
        require = boundary.required(self.config.require_os_boundary)
        bwrap = boundary.bwrap_path()
        failure = "bubblewrap (bwrap) is not installed"
        if bwrap is not None:
            try:
                self._launch(in_boundary=True)
            except SandboxError as exc:
                failure = f"bubblewrap could not start the sandbox: {exc}"
            else:
                failure = ""
        if failure:
            if require:
                raise SandboxError(f"the sandbox's OS boundary is required but unavailable: {failure}. "
                                   "Install it (Debian: apt-get install bubblewrap libseccomp2) or allow "
                                   "running without it (require_os_boundary=False, "
                                   f"{boundary.REQUIRE_ENV} unset).")
            self._launch(in_boundary=False)
        missing = [name for name in boundary.LAYERS if not self.layers.get(name)]
        if missing:
            why = failure or str(self.layers.get("seccomp_error") or "not provided by this host")
            if require:
                self.close()
                raise SandboxError(f"the sandbox's OS layers {', '.join(missing)} are required but "
                                   f"unavailable ({why})")
            boundary.warn_missing(missing, why)

    def _launch(self, in_boundary: bool) -> None:
        host_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        host_end.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        command = self._command(zygote_end.fileno(), in_boundary)
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, pass_fds=[zygote_end.fileno()], close_fds=True,
                                    start_new_session=True, env={"PATH": os.defpath, "LC_ALL": "C.UTF-8",
                                                                 "PYTHONHASHSEED": "0"})
        except OSError as exc:
            host_end.close()
            raise SandboxError(f"cannot start a sandbox worker ({command[0]}): {exc}") from exc
        finally:
            zygote_end.close()
        self._proc, self._sock = proc, host_end
        host_end.setblocking(False)
        try:
            head, pid = _receive_with_pid(host_end, HEADER.size, time.monotonic() + self.config.startup_timeout_s)
            body, _ = _receive_with_pid(host_end, HEADER.unpack(head)[0], time.monotonic() + 5.0)
            ready = json.loads(body)
            if not (isinstance(ready, list) and ready[:1] == ["ready"]):
                raise WorkerDied(None)
        except (WorkerTimeout, WorkerDied, ValueError) as exc:
            detail = self._stderr_tail()
            self.kill()
            raise SandboxError(f"cannot start a sandbox worker: {type(exc).__name__}. {detail}".strip()) from None
        assert proc.stderr is not None
        proc.stderr.close()
        self.layers, self.pid = dict(ready[1]), pid
        host_end.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)  # replies are read as whole messages
        self.generation += 1

    def _stderr_tail(self) -> str:
        proc = self._proc
        if proc is None or proc.stderr is None or proc.stderr.closed:
            return ""
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        text = proc.stderr.read().decode("utf-8", "replace").strip()
        return f"Its stderr: {text[-2000:]}" if text else ""

    def ensure_running(self) -> None:
        """Start a new zygote if there is none (or this is a forked copy of the process that started it).

        Raises:
            SandboxError: the sandbox is closed, or the zygote cannot be started.
        """
        if forked() != self._owner:
            self._disown()
        if self._proc is None or self._proc.poll() is not None:
            if self.closed:
                raise SandboxError("the sandbox is closed")
            self.kill()
            self._launch(in_boundary=bool(self.layers.get("namespaces")))

    def _disown(self) -> None:
        """In a forked child: forget the parent's zygote without touching it, so the child starts its own."""
        proc, self._proc, self._sock = self._proc, None, None
        self._drop_prefetched()
        self._owner = forked()
        if proc is not None:
            proc.returncode = -1  # not our child: never wait for it

    def kill(self) -> None:
        """SIGKILL the zygote (bubblewrap takes every episode process with it) and reap it (idempotent)."""
        if forked() != self._owner:
            self._disown()
            return
        proc, sock = self._proc, self._sock
        self._proc = self._sock = None
        self._drop_prefetched()
        if proc is None:
            if sock is not None:
                sock.close()
            return
        inside = [pid for pid in (self.pid, *self.episode_pids) if pid is not None]
        watchers = _pidfds(inside)  # opened before the kill, so a reused pid cannot be mistaken for them
        if sock is not None and proc.poll() is None:
            with contextlib.suppress(OSError):  # the zygote kills and reaps its episodes, then exits
                write_until(sock.fileno(), _SHUTDOWN, time.monotonic() + 1.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(KILL_WAIT_S)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _wait_all(watchers, KILL_WAIT_S)
        self.episode_pids.clear()
        if sock is not None:
            sock.close()
        if proc.stderr is not None and not proc.stderr.closed:
            proc.stderr.close()

    def close(self) -> None:
        """Kill the zygote and its episode processes for good."""
        self.closed = True
        self.kill()

    # ---- requests -------------------------------------------------------------------------------

    def _send(self, request: list[Any], timeout_s: float = 10.0) -> None:
        """Send one request (zygote lock held)."""
        self._send_raw(json.dumps(request).encode(), timeout_s)

    def _send_raw(self, payload: bytes, timeout_s: float) -> None:
        """Send one frame (zygote lock held)."""
        sock = self._sock
        if sock is None:
            raise WorkerDied(None)
        try:
            if not write_until(sock.fileno(), HEADER.pack(len(payload)) + payload, time.monotonic() + timeout_s):
                raise WorkerTimeout()
        except OSError:
            raise WorkerDied(None) from None

    def _read_reply(self, timeout_s: float = 10.0) -> tuple[Any, list[int]]:
        """Read the next reply and the descriptors attached to it (zygote lock held)."""
        sock = self._sock
        if sock is None:
            raise WorkerDied(None)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        if not poller.poll(math.ceil(timeout_s * 1000)):
            raise WorkerTimeout()
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(
                1 << 16, socket.CMSG_SPACE(_CREDENTIALS.size) + socket.CMSG_SPACE(_FD.size))
        except OSError:
            raise WorkerDied(None) from None
        fds = [fd for level, kind, payload in ancillary if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
               for fd in _fds(payload)]
        if len(data) < HEADER.size or HEADER.unpack_from(data)[0] != len(data) - HEADER.size:
            for fd in fds:
                os.close(fd)
            raise WorkerDied(None)
        return json.loads(data[HEADER.size:]), fds

    def _collect_prefetch(self) -> None:
        """Read the reply to the spawn request sent ahead (so that the next reply read is the caller's)."""
        if self._prefetch_pending:
            self._prefetch_pending = False
            self._prefetched.append(self._read_reply(self.config.startup_timeout_s))

    def _drop_prefetched(self) -> None:
        for _answer, fds in self._prefetched:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._prefetched.clear()
        self._prefetch_pending = False

    def _forking(self, take: Callable[[], tuple[Any, list[int]]]) -> EpisodeProcess:
        """Run ``take`` (requests that end in a ``child`` reply) under the lock and adopt the episode
        process it names. A dead zygote is restarted once; an episode process that died before it said
        hello (killed from outside while it waited) is passed over for the next one."""
        with self.lock:
            restarted = False
            for _attempt in range(FORK_ATTEMPTS):
                self.ensure_running()
                try:
                    answer, fds = take()
                    if answer[0] != "child" or len(fds) != 1:
                        raise WorkerDied(None)
                except (WorkerDied, WorkerTimeout):
                    self.kill()
                    if restarted:
                        raise SandboxError("the sandbox's zygote process died twice while forking an "
                                           "episode process") from None
                    restarted = True
                    continue
                try:
                    process = EpisodeProcess(self, int(answer[1]), fds[0], self.generation)
                except WorkerDied:
                    continue
                if process.pid is not None:
                    self.episode_pids.add(process.pid)
                return process
        raise SandboxError(f"{FORK_ATTEMPTS} episode processes in a row died before they were ready")

    def spawn(self) -> EpisodeProcess:
        """A fresh episode process, forked from the pristine zygote.

        The zygote forks (and warms up) an episode process ahead of time, and the host asks for the next
        one as it takes this one, so neither the fork nor the round trip is on an episode's path.

        Raises:
            SandboxError: the zygote cannot be (re)started.
        """
        def take() -> tuple[Any, list[int]]:
            if not self._prefetched:
                if not self._prefetch_pending:
                    self._send(["spawn"])
                    self._prefetch_pending = True
                self._collect_prefetch()
            taken = self._prefetched.pop(0)
            self._send(["spawn"])
            self._prefetch_pending = True
            return taken

        return self._forking(take)

    def spawn_compiler(self) -> EpisodeProcess:
        """The sandbox's compiler process: forked like an episode, it compiles tool sources and never
        runs them (``compile_cache.py``).

        Raises:
            SandboxError: the zygote cannot be (re)started.
        """
        def take() -> tuple[Any, list[int]]:
            self._collect_prefetch()
            self._send(["compiler"])
            return self._read_reply()

        return self._forking(take)

    def spawn_with_state(self, key: str, state: bytes) -> EpisodeProcess:
        """A fresh episode process that inherits a world state the zygote decoded (once per state, kept
        while the zygote lives and its cache has room): a 5 MB state is not sent or decoded per episode.

        Args:
            key: the state's digest (the zygote's cache key).
            state: its JSON, sent only when the zygote does not hold it.

        Raises:
            SandboxError: the zygote cannot be (re)started.
        """
        def take() -> tuple[Any, list[int]]:
            self._collect_prefetch()
            self._send(["spawn_state", key])
            answer = self._read_reply()
            if answer[0][0] == "missing":
                self._send(["put_state", key])
                self._send_raw(state, timeout_s=10.0 + len(state) / 1e7)
                self._send(["spawn_state", key])
                answer = self._read_reply()
            return answer

        return self._forking(take)

    def end(self, child_id: int, generation: int, pid: int | None, status: bool = False) -> int | None:
        """Kill and reap an episode process; with ``status``, wait for and return its return code."""
        with self.lock:
            if generation != self.generation or self._sock is None or forked() != self._owner:
                return None
            self.episode_pids.discard(pid)
            try:
                if not status:
                    self._send(["kill", child_id])
                    return None
                self._collect_prefetch()
                self._send(["status", child_id])
                answer, _fds = self._read_reply()
            except (WorkerDied, WorkerTimeout):
                self.kill()
                return None
            return answer[2]


class EpisodeProcess:
    """The host's handle of one episode process: its socket, its pid and its deadlines."""

    def __init__(self, zygote: Zygote, child_id: int, fd: int, generation: int) -> None:
        self.zygote = zygote
        self.child_id = child_id
        self.generation = generation
        self.owner = forked()
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.fd = fd
        self.reader = FrameReader(fd, MAX_STATE_BYTES)
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)
        self._deadline = 0.0
        self.alive = True
        self.pid: int | None = None
        try:
            hello, self.pid = _receive_with_pid(self.sock, HEADER.size + 5,
                                                time.monotonic() + zygote.config.startup_timeout_s)
        except (WorkerTimeout, WorkerDied):
            self.end()
            raise WorkerDied(None) from None
        if hello[HEADER.size:] != b"hello":
            self.end()
            raise WorkerDied(None)

    def send(self, payload: bytes, timeout_s: float) -> None:
        """Send one frame before the deadline.

        Raises:
            WorkerTimeout: the process stopped reading.
            WorkerDied: the process is gone.
        """
        if not self.alive or forked() != self.owner:
            raise WorkerDied(None)
        try:
            if not write_until(self.fd, HEADER.pack(len(payload)) + payload, time.monotonic() + timeout_s):
                raise WorkerTimeout()
        except OSError:
            raise WorkerDied(self.returncode()) from None

    def receive_raw(self, timeout_s: float, max_bytes: int) -> bytes:
        """The next frame's payload, within ``timeout_s`` and ``max_bytes``.

        Raises:
            WorkerTimeout: nothing complete arrived in time.
            WorkerDied: end of file, or an oversized frame.
        """
        self._deadline = time.monotonic() + timeout_s
        self.reader.max_frame = max_bytes
        try:
            frame = self.reader.read(self._wait)
        except (ProtocolError, OSError):
            frame = None
        if frame is None:
            raise WorkerDied(self.returncode())
        return frame

    def receive_reply(self, timeout_s: float, output_limit: int) -> tuple[bool, str, Any, float]:
        """One call's reply: ``(ok, text, value, elapsed_s)``.

        Raises:
            WorkerTimeout: nothing complete arrived in time.
            WorkerDied: end of file, or a malformed reply.
        """
        try:
            return decode_reply(self.receive_raw(timeout_s, output_limit + REPLY_SLACK_BYTES))
        except ProtocolError:
            raise WorkerDied(self.returncode()) from None

    def receive_json(self, timeout_s: float) -> Any:
        """The next frame decoded as JSON (a state reply).

        Raises:
            WorkerTimeout: nothing complete arrived in time.
            WorkerDied: end of file, or not JSON.
        """
        try:
            return json.loads(self.receive_raw(timeout_s, MAX_STATE_BYTES))
        except (ValueError, RecursionError):
            raise WorkerDied(self.returncode()) from None

    def _wait(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0 or not self._poller.poll(math.ceil(remaining * 1000)):
            raise WorkerTimeout()

    def returncode(self) -> int | None:
        """End the process and return how it ended (asks the zygote, which reaps it)."""
        if not self.alive:
            return None
        self.alive = False
        self._close_socket()
        if forked() != self.owner:
            return None
        return self.zygote.end(self.child_id, self.generation, self.pid, status=True)

    def end(self) -> None:
        """SIGKILL and reap the process (through the zygote) and close the socket (idempotent)."""
        if not self.alive:
            return
        self.alive = False
        self._close_socket()
        if forked() == self.owner:
            self.zygote.end(self.child_id, self.generation, self.pid)

    def _close_socket(self) -> None:
        self.sock.close()  # in a forked child this closes only the child's copy
