"""Tool sources compiled once per sandbox, in a compiler process of their own, and cached by the host.

Compiling a generated tool under RestrictedPython takes about 1-2 ms, and every episode process starts
from the zygote's pristine memory, so without this each episode would compile its tools again. The
compiler process is forked from the zygote like an episode (same boundary, filters and limits), only
compiles, and never runs tool code. The host keeps its answers (``marshal`` bytes it never decodes)
in an LRU and hands them to each episode process with its setup.
"""

from __future__ import annotations

import hashlib
import marshal
import threading
from collections import OrderedDict
from collections.abc import Mapping

from ftrl_gym.sandbox import messages
from ftrl_gym.sandbox.process import EpisodeProcess, WorkerDied, WorkerTimeout, Zygote, forked
from ftrl_gym.sandbox.protocol import dumps_compact

CACHE_BYTES = 64 << 20
"""Bytes of compiled code the host keeps (least recently used dropped first)."""

MAX_SOURCE_CHARS = 1 << 20
"""Longer sources are compiled in the episode process itself, under its own limits."""


class CompileCache:
    """Compiled tools by name and source, filled by the sandbox's compiler process; thread-safe.

    Args:
        zygote: forks the compiler process (again, if it dies or misses a deadline).
    """

    def __init__(self, zygote: Zygote) -> None:
        self._zygote = zygote
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._process: EpisodeProcess | None = None

    def __len__(self) -> int:
        """How many tool sources are cached."""
        return len(self._entries)

    @property
    def compiler_pid(self) -> int | None:
        """The host's pid of the compiler process (None until it is first needed, or after it died)."""
        process = self._process
        return process.pid if process is not None and process.alive else None

    def compiled(self, codes: Mapping[str, str]) -> list[bytes]:
        """One ``name NUL marshal((code, error))`` frame per tool of ``codes`` that could be compiled here.

        A source that fails or times out is cached with its error line, so it costs its deadline once.
        """
        frames = []
        for name, source in codes.items():
            if len(source) > MAX_SOURCE_CHARS:
                continue
            payload = self._lookup(name, source)
            if payload is not None:
                frames.append(name.encode("utf-8", "surrogatepass") + b"\0" + payload)
        return frames

    def _lookup(self, name: str, source: str) -> bytes | None:
        key = hashlib.blake2b(f"{name}\0{source}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            payload = self._entries.get(key)
            if payload is not None:
                self._entries.move_to_end(key)
                return payload
            payload, keep = self._compile(name, source)
            if payload is not None and keep:
                self._entries[key] = payload
                self._bytes += len(payload)
                while self._bytes > CACHE_BYTES and len(self._entries) > 1:
                    self._bytes -= len(self._entries.popitem(last=False)[1])
            return payload

    def _compile(self, name: str, source: str) -> tuple[bytes | None, bool]:
        """Ask the compiler process (lock held): its answer and whether to keep it. None when it could not
        be reached at all (the episode process then compiles the tool itself)."""
        timeout = self._zygote.config.timeout_s
        request = dumps_compact([name, source]).encode("utf-8", "surrogatepass")
        for _attempt in range(2):
            process = self._process
            if process is None or not process.alive or process.owner != forked():
                try:
                    process = self._process = self._zygote.spawn_compiler()
                except Exception:  # noqa: BLE001 - the episode process then compiles the tool itself
                    return None, False
            try:
                process.send(request, timeout)
            except (WorkerDied, WorkerTimeout):  # it was gone before it saw the source: ask a new one
                process.end()
                self._process = None
                continue
            try:
                return process.receive_raw(timeout, 1 << 30), True
            except WorkerTimeout:  # the source's own doing: keep the verdict, so it costs this once
                process.end()
                self._process = None
                return marshal.dumps((None, f"compiling took longer than {messages.seconds(timeout)} s")), True
            except WorkerDied:
                self._process = None
                return marshal.dumps((None, "the compiler process died while compiling it")), False
        return None, False

    def close(self) -> None:
        """Stop the compiler process (the cache stays)."""
        with self._lock:
            if self._process is not None:
                self._process.end()
                self._process = None
