"""The sandbox: a pool of persistent worker processes that sessions are opened on."""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Self

from ftrl_gym.errors import SandboxError
from ftrl_gym.sandbox.config import SandboxConfig
from ftrl_gym.sandbox.process import WorkerProcess
from ftrl_gym.sandbox.session import SandboxSession


def _shutdown(workers: list[WorkerProcess], grace_s: float) -> None:
    """Kill and reap every worker (the finaliser of a :class:`Sandbox`; also runs at exit)."""
    for worker in workers:
        acquired = worker.lock.acquire(timeout=grace_s)
        try:
            worker.close()
        finally:
            if acquired:
                worker.lock.release()


class Sandbox:
    """Runs untrusted tool code: RestrictedPython inside persistent, resource-limited worker processes.

    Use as a context manager, or call :meth:`close`; a finaliser (also run at interpreter exit) kills
    the workers of a sandbox that was never closed. Thread-safe: each worker has a lock, and calls of
    sessions on the same worker take turns.

    Args:
        config: limits and pool size; defaults to :class:`SandboxConfig()`.

    Raises:
        SandboxError: a worker process cannot be started.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False
        self._workers: list[WorkerProcess] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, self.config.timeout_s + 1)
        try:
            self._workers.extend(WorkerProcess(self.config) for _ in range(self.config.num_workers))
            for worker in self._workers:
                worker.wait_ready()
        except BaseException:
            self._finalizer()
            raise

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (they change when a worker is replaced)."""
        return [w.pid for w in self._workers if w.pid is not None]

    @property
    def network_isolated(self) -> bool:
        """Whether every worker runs in its own empty network namespace (best effort, see the config)."""
        return all(w.network_isolated for w in self._workers)

    def open_session(self, codes: Mapping[str, str], state: Any = None, *,
                     seed: int | None = None, state_json: str | None = None) -> SandboxSession:
        """Open an episode's session on the least busy worker. Costs no round trip: the tools and state
        travel with the session's first call.

        Args:
            codes: tool name to Python source defining a function of that name.
            state: the world state of a stateful task (JSON-like), passed to every call as ``data``;
                copied now, so later changes to the caller's object do not reach the session.
            seed: seed of the session's ``random`` module; None seeds from the OS.
            state_json: the state already serialised as one JSON document (instead of ``state``), so a
                caller that keeps its records serialised pays no copy or encoding per episode.

        Raises:
            TypeError: ``codes`` is not a mapping of str to str, ``state`` is not JSON-serialisable or
                ``seed`` is not an int.
            SandboxError: the sandbox is closed.
        """
        if self._closed:
            raise SandboxError("open_session() on a closed Sandbox")
        if not isinstance(codes, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in codes.items()):
            raise TypeError("codes must map tool names (str) to Python source (str)")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        if state_json is not None:
            if state is not None or not isinstance(state_json, str):
                raise TypeError("pass either state or state_json (a str of JSON), not both")
        else:
            state_json = self._encode_state(state)
        codes_json = json.dumps(dict(codes), separators=(",", ":"))
        with self._lock:
            worker = min(self._workers, key=lambda w: w.open_sessions)
            worker.open_sessions += 1
            sid = next(self._ids)
        return SandboxSession(worker, sid, codes_json, state_json, seed, list(codes), owner=self)

    @staticmethod
    def _encode_state(state: Any) -> str | None:
        try:
            return None if state is None else json.dumps(state, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"state must be JSON-serialisable: {exc}") from None

    def close(self) -> None:
        """Kill and reap every worker process; no process is left behind (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]
