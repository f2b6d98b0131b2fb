"""The zygote: a pristine, pre-imported, single-threaded process that forks one process per episode.

It runs inside the OS boundary (``boundary.py``) and never runs tool code, so every episode process
starts from the same untouched memory: nothing of one episode (objects, registries, finalizers, RNG draws,
``decimal`` contexts) can reach another. The host talks to it over one Unix socket:

- ``["spawn"]``: the zygote answers ``["child", id]`` with the host's end of a fresh socketpair attached
  (``SCM_RIGHTS``); the other end belongs to an episode process forked ahead of time, so the answer
  costs no fork;
- ``["spawn_state", key]``: the same for an episode that inherits a world state decoded here earlier (no
  spare: it is forked now, with the state in its memory), or ``["missing", key]``;
- ``["compiler"]``: the same for the sandbox's compiler process (it compiles tool sources for the host's
  cache and never runs them);
- ``["put_state", key]`` and a raw frame of JSON: decode a world state once and keep it (no answer);
- ``["kill", id]``: SIGKILL and reap that episode process (no answer);
- ``["status", id]``: reap it and answer ``["status", id, returncode]`` (negative: killed by a signal);
- ``["shutdown"]``: kill and reap every episode process, then exit.

Its first frame is ``["ready", layers]``, sent with ``SCM_CREDENTIALS`` so that the host learns its pid.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import struct
import time
from collections import OrderedDict
from typing import Any, NamedTuple

from ftrl_gym.sandbox import limits, mpmath_proxy, seccomp
from ftrl_gym.sandbox.boundary import UNPRIVILEGED_ID
from ftrl_gym.sandbox.protocol import HEADER, FrameReader, loads_exact, write_frame
from ftrl_gym.sandbox.runtime import ToolSession
from ftrl_gym.sandbox.worker import serve_compiler, serve_episode

EPISODE_FD = 3
"""The descriptor of an episode process's socket to the host (0-2 are ``/dev/null``; nothing else is open)."""
REAP_INTERVAL_S = 0.5
"""How often an idle zygote reaps episode processes that ended on their own."""

_dumps = json.JSONEncoder(separators=(",", ":")).encode


def send_with_credentials(sock: socket.socket, payload: bytes) -> None:
    """Send one frame with this process's credentials attached, so the receiver learns its pid as the
    receiver's own PID namespace numbers it (the kernel translates it)."""
    creds = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
    sock.sendmsg([HEADER.pack(len(payload)) + payload],
                 [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])


def _drop_privileges() -> bool:
    """As root (inside the boundary, no user namespace): become uid/gid 65534 for good. Returns whether
    the process runs unprivileged afterwards."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
        os.setresuid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    return os.geteuid() != 0 and os.getuid() != 0


WARM_UP_SOURCE = """import json
def warm_up(city: str, days: int = 2):
    table = {"paris": [21.5, 19.0], "rome": [25.0, 24.5]}
    temps = table.get(city.lower(), [])[:days]
    return {"city": city, "temps": temps, "text": f"{city}: {json.dumps(temps)}"}
"""
"""Trusted code an episode process runs while it waits for its session: it compiles and runs a typical
tool once, so that the pages that compiling and calling touch are already copied from the zygote when
the episode's first call comes (the same for every episode, so episodes stay identical)."""


def warm_up(memory_mb: int) -> None:
    """Run :data:`WARM_UP_SOURCE` once in a throw-away session."""
    session = ToolSession({"warm_up": WARM_UP_SOURCE}, False, None, 0, memory_mb)
    session.call("warm_up", {"city": "Paris"}, 1024)


class DecodedState(NamedTuple):
    """A world state the zygote decoded for the episodes of one task."""

    data: Any
    """The decoded JSON value (plain dicts, lists, strings and numbers)."""
    error: str
    """Why the state could not be decoded ("" when it could)."""
    size: int
    """Bytes of its JSON, for the cache's budget."""


COMPILER = DecodedState(None, "", 0)
"""Passed to :meth:`Zygote.fork_episode` for the compiler process, which compiles and never runs tools."""

STATE_CACHE_BYTES = 32 << 20
"""JSON bytes of world states the zygote keeps decoded (least recently used dropped first): every fork
copies the page tables of what the zygote holds, so the cache stays small."""


def _returncode(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


class Zygote:
    """The request loop and the episode processes it forked."""

    def __init__(self, control: socket.socket, settings: dict[str, Any]) -> None:
        self.control = control
        self.settings = settings
        self.reader = FrameReader(control.fileno(), (64 << 20) * 4 + 4096)  # a state in UTF-8, at most
        self.children: dict[int, int] = {}  # episode id -> pid, until the host ends the episode
        self.ids: dict[int, int] = {}  # pid -> episode id, until the process is reaped
        self.exited: dict[int, int] = {}  # episode id -> return code, reaped before the host asked
        self.next_id = 1
        self.spare: tuple[int, int, socket.socket] | None = None
        self.states: OrderedDict[str, DecodedState] = OrderedDict()  # by the host's key, least recent first
        self.state_bytes = 0
        self.episode_filter: seccomp.CompiledFilter | None = None

    def fork_episode(self, state: DecodedState | None = None) -> tuple[int, int, socket.socket]:
        """Fork an episode process; return its id, pid and the host's end of its socket.

        Args:
            state: a world state decoded here before, which the process inherits (copy-on-write)
                instead of receiving and decoding it; None for a spare, which warms up instead.
        """
        host_end, episode_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        host_end.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the episode process; never returns
            status = 1
            try:
                host_end.close()
                self._become_episode(episode_end, state)
                status = 0
            finally:
                os._exit(status)
        episode_end.close()
        child_id = self.next_id
        self.next_id += 1
        self.children[child_id] = pid
        self.ids[pid] = child_id
        return child_id, pid, host_end

    def _become_episode(self, channel: socket.socket, state: DecodedState | None) -> None:
        """In the forked child: shed the zygote's descriptors, set limits and the episode filter, serve."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if not limits.die_with_parent(os.getppid()):  # the zygote died since the fork
            return
        os.dup2(channel.detach(), EPISODE_FD)
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(null, std)
        os.closerange(EPISODE_FD + 1, 1 << 16)  # the zygote's socket, pipes and this copy of the channel
        limits.make_undumpable()
        limits.harden(int(self.settings["memory_mb"]))
        if self.episode_filter is not None:
            self.episode_filter.load()
        sock = socket.socket(fileno=EPISODE_FD)
        send_with_credentials(sock, b"hello")
        sock.detach()
        if state is COMPILER:
            serve_compiler(EPISODE_FD, self.settings)
            return
        if state is None:
            warm_up(int(self.settings["memory_mb"]))
        serve_episode(EPISODE_FD, self.settings, state)

    def serve(self) -> None:
        """Answer requests until the host closes the socket; reap episode processes as they end."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        signal.set_wakeup_fd(wake_write)  # a SIGCHLD wakes the poll below: killed processes are reaped at once
        poller = select.poll()
        poller.register(self.control.fileno(), select.POLLIN)
        poller.register(wake_read, select.POLLIN)
        while True:
            if self.spare is None:
                self.spare = self.fork_episode()
            while not self.reader.buffered():
                ready = {fd for fd, _event in poller.poll(REAP_INTERVAL_S * 1000)}
                if wake_read in ready or not ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_read, 4096)
                    self._reap()
                if self.control.fileno() in ready:
                    break
            frame = self.reader.read()
            if frame is None:
                return
            self._handle(json.loads(frame))

    def _handle(self, request: list[Any]) -> None:
        if request[0] == "spawn":
            self._reap()
            if self.spare is None or self.spare[0] in self.exited:  # the spare was killed from outside
                if self.spare is not None:
                    self.exited.pop(self.spare[0], None)
                    self.children.pop(self.spare[0], None)
                    self.spare[2].close()
                self.spare = self.fork_episode()
            child_id, _pid, host_end = self.spare
            self.spare = None
            socket.send_fds(self.control, [_frame(["child", child_id])], [host_end.fileno()])
            host_end.close()
        elif request[0] == "kill":
            self._kill_later(int(request[1]))
        elif request[0] == "status":
            code = self._kill(int(request[1]), grace_s=0.2)
            write_frame(self.control.fileno(), _dumps(["status", request[1], code]).encode())
        elif request[0] == "spawn_state":
            state = self.states.get(request[1])
            if state is None:
                write_frame(self.control.fileno(), _dumps(["missing", request[1]]).encode())
                return
            self.states.move_to_end(request[1])
            child_id, _pid, host_end = self.fork_episode(state)
            socket.send_fds(self.control, [_frame(["child", child_id])], [host_end.fileno()])
            host_end.close()
        elif request[0] == "compiler":
            child_id, _pid, host_end = self.fork_episode(COMPILER)
            socket.send_fds(self.control, [_frame(["child", child_id])], [host_end.fileno()])
            host_end.close()
        elif request[0] == "put_state":
            payload = self.reader.read()
            if payload is None:
                raise EOFError
            self._store_state(request[1], payload)
        elif request[0] == "shutdown":
            self.shutdown()

    def _store_state(self, key: str, payload: bytes) -> None:
        """Decode a world state (JSON: data only, no code) once and keep it for the episodes to inherit."""
        try:
            state = DecodedState(loads_exact(payload.decode("utf-8")), "", len(payload))
        except (ValueError, RecursionError, MemoryError) as exc:
            state = DecodedState(None, f"the episode state is not valid JSON ({type(exc).__name__}: {exc})"[:300],
                                 len(payload))
        self.states[key] = state
        self.state_bytes += state.size
        while self.state_bytes > STATE_CACHE_BYTES and len(self.states) > 1:
            self.state_bytes -= self.states.popitem(last=False)[1].size
        gc.collect()
        gc.freeze()

    def shutdown(self) -> None:
        """Kill and reap every episode process, then exit: nothing is left, not even a zombie."""
        for child_id in list(self.children):
            self._kill(child_id)
        os._exit(0)

    def _reap(self) -> None:
        """Collect episode processes that ended (no zombies); keep the return codes the host may ask for."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child_id = self.ids.pop(pid, None)
            if child_id is not None:
                self.exited[child_id] = _returncode(status)

    def _kill_later(self, child_id: int) -> None:
        """SIGKILL an episode process now and reap it later (its teardown need not delay the next
        request). A process not yet reaped keeps its pid, so the signal cannot reach another one."""
        pid = self.children.pop(child_id, None)
        self.exited.pop(child_id, None)
        if pid is not None and self.ids.pop(pid, None) is not None:
            os.kill(pid, signal.SIGKILL)

    def _kill(self, child_id: int, grace_s: float = 0.0) -> int | None:
        """End an episode process: wait up to ``grace_s`` for it to exit by itself, then SIGKILL; reap.

        Returns:
            Its return code, None when the id is unknown.
        """
        pid = self.children.pop(child_id, None)
        if pid is None:
            return None
        deadline = time.monotonic() + grace_s
        while child_id not in self.exited and pid in self.ids:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped meanwhile
                break
            if done:
                self.ids.pop(pid)
                return _returncode(status)
            if time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                self.ids.pop(pid)
                return _returncode(os.waitpid(pid, 0)[1])
            time.sleep(0.005)
        return self.exited.pop(child_id, None)


def _frame(obj: Any) -> bytes:
    payload = _dumps(obj).encode()
    return HEADER.pack(len(payload)) + payload


def main(control_fd: int, settings: dict[str, Any]) -> None:
    """Pre-import, drop privileges, load the zygote's seccomp filter, report ready, serve.

    Args:
        control_fd: the zygote's end of the host's socketpair.
        settings: ``timeout_s``, ``memory_mb``, ``output_limit``, ``language_barrier``, ``in_boundary``.
    """
    control = socket.socket(fileno=control_fd)
    mpmath_proxy.preload()
    zygote = Zygote(control, settings)
    in_boundary = bool(settings["in_boundary"])
    if not in_boundary:
        limits.enter_empty_directory()
    layers: dict[str, Any] = {"namespaces": in_boundary,
                              "network namespace": in_boundary or limits.unshare_network(),
                              "read-only file system": in_boundary, "unprivileged uid": _drop_privileges(),
                              "process per episode": True, "rlimits": True}
    limits.make_undumpable()
    try:
        seccomp.load_filter(seccomp.ZYGOTE_DENIED, deny_namespace_clones=True)
        zygote.episode_filter = seccomp.CompiledFilter(seccomp.EPISODE_DENIED)
    except seccomp.SeccompError as exc:
        layers["seccomp_error"] = str(exc)
    layers["seccomp"] = zygote.episode_filter is not None
    gc.collect()
    gc.freeze()  # episode processes then never touch (and copy) the zygote's objects in a collection
    send_with_credentials(control, _dumps(["ready", layers]).encode())
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    os.close(null)
    zygote.serve()
