"""The sandbox: a pool of persistent worker processes that sessions are opened on."""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Mapping
from typing import Any, Self

from ftrl_gym.errors import SandboxError
from ftrl_gym.sandbox import boundary
from ftrl_gym.sandbox.compile_cache import CompileCache
from ftrl_gym.sandbox.config import SandboxConfig
from ftrl_gym.sandbox.process import Zygote
from ftrl_gym.sandbox.session import SandboxSession


MAX_STATE_JSON_CHARS = 64 << 20
"""Largest world state (characters of JSON) a session accepts; the zygote decodes it once per task."""

STATE_KEYS_CHARS = 64 << 20
"""Characters of state strings whose digest a sandbox remembers (the oldest is forgotten first): the
dictionary keeps the strings alive, so it is bounded by their size, not their number."""


def _shutdown(zygote: Zygote, compiler: CompileCache) -> None:
    """Kill the compiler, the zygote and every episode process (the finaliser of a :class:`Sandbox`;
    also at exit)."""
    compiler.close()
    zygote.close()


class Sandbox:
    """Runs untrusted tool code: RestrictedPython, in one process per episode, inside an OS boundary.

    A pristine zygote process, started inside bubblewrap (new PID, mount, IPC, network and UTS
    namespaces, read-only binds, uid 65534, a seccomp filter), forks one process per episode session.
    Use as a context manager, or call :meth:`close`; a finaliser (also run at interpreter exit) kills the
    processes of a sandbox that was never closed. Thread-safe, and sessions run in parallel.

    Args:
        config: limits and boundary settings; defaults to :class:`SandboxConfig()`.

    Raises:
        SandboxError: the zygote cannot be started, or ``require_os_boundary`` is set and a layer of the
            OS boundary is unavailable.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._closed = False
        self._sessions: weakref.WeakSet[SandboxSession] = weakref.WeakSet()
        self._state_keys: dict[str, str] = {}
        self._state_key_chars = 0
        self._zygote = Zygote(self.config)
        self._compiler = CompileCache(self._zygote)
        self._finalizer = weakref.finalize(self, _shutdown, self._zygote, self._compiler)

    @property
    def layers(self) -> dict[str, bool]:
        """Which OS layers hold on this host (``boundary.LAYERS``), as the zygote reported them."""
        return {name: bool(self._zygote.layers.get(name)) for name in boundary.LAYERS}

    @property
    def network_isolated(self) -> bool:
        """Whether tool code runs in its own empty network namespace."""
        return bool(self._zygote.layers.get("network namespace"))

    @property
    def zygote_pid(self) -> int | None:
        """The host's process id of the zygote (the process inside the boundary that forks episodes)."""
        return self._zygote.pid if not self._closed else None

    @property
    def compile_cache(self) -> CompileCache:
        """Tool sources compiled once per sandbox by its compiler process (see ``compile_cache.py``)."""
        return self._compiler

    @property
    def episode_pids(self) -> list[int]:
        """Host process ids of the live episode processes, one per session that has made a call."""
        if self._closed:
            return []
        return [pid for pid in (s.pid for s in list(self._sessions)) if pid is not None]

    def open_session(self, codes: Mapping[str, str], state: Any = None, *,
                     seed: int | None = None, state_json: str | None = None) -> SandboxSession:
        """Open an episode's session. Costs no round trip: its process is forked at the first call, and
        the tools and state travel to it then.

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
            SandboxError: the sandbox is closed, or the state is larger than ``MAX_STATE_JSON_CHARS``.
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
        if state_json is not None and len(state_json) > MAX_STATE_JSON_CHARS:
            raise SandboxError(f"the state's JSON has {len(state_json):,} characters, more than the sandbox's "
                               f"limit of {MAX_STATE_JSON_CHARS:,}")
        key = "" if state_json is None else self._state_key(state_json)
        session = SandboxSession(self._zygote, dict(codes), state_json, seed, self._compiler, owner=self,
                                 state_key=key)
        self._sessions.add(session)
        return session

    def _state_key(self, state_json: str) -> str:
        """A digest of the state (the zygote's cache key), computed once per state string: an env passes
        the same string for every episode of a task, and a dict finds it by identity."""
        key = self._state_keys.get(state_json)
        if key is None:
            key = hashlib.blake2b(state_json.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
            self._state_keys[state_json] = key
            self._state_key_chars += len(state_json)
            while self._state_key_chars > STATE_KEYS_CHARS and len(self._state_keys) > 1:
                oldest = next(iter(self._state_keys))
                del self._state_keys[oldest]
                self._state_key_chars -= len(oldest)
        return key

    @staticmethod
    def _encode_state(state: Any) -> str | None:
        try:
            return None if state is None else json.dumps(state, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"state must be JSON-serialisable: {exc}") from None

    def close(self) -> None:
        """Kill the zygote and every episode process; no process is left behind (idempotent)."""
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
