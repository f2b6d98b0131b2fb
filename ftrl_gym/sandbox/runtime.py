"""Worker side of a session: fresh module globals per tool, the episode's ``data``, and running calls."""

from __future__ import annotations

import builtins
import decimal
import random
import types
import time
from collections.abc import Callable
from typing import Any

from ftrl_gym.sandbox import messages
from ftrl_gym.sandbox.guards import make_builtins
from ftrl_gym.sandbox.modules import SessionImporter
from ftrl_gym.sandbox.policy import compile_tool
from ftrl_gym.sandbox.protocol import ERROR
from ftrl_gym.sandbox.results import render

Reply = tuple[bytes, bytes, float]
"""One call's reply: ``(kind, UTF-8 text, elapsed_s)``, see :func:`ftrl_gym.sandbox.protocol.encode_reply`."""

_BASE_BUILTINS = make_builtins()
_MODULE_NAME = "tool"


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, robust to a hostile ``__str__``."""
    try:
        detail = messages.one_line(str(exc))
    except BaseException:  # noqa: BLE001 - the message itself is tool code
        detail = ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _fresh_decimal_context() -> decimal.Context:
    """A default decimal context built from explicit values (not from the shared ``DefaultContext``)."""
    return decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN, Emin=-999999, Emax=999999,
                           capitals=1, clamp=0, flags=[],
                           traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])


def compile_source(name: str, source: str, restricted: bool = True) -> tuple[types.CodeType | None, str | None]:
    """A tool's code object, or the reason it does not compile: ``(code, None)`` or ``(None, error)``."""
    return compile_tool(name, source) if restricted else _compile_plain(name, source)


def _compile_plain(name: str, source: str) -> tuple[types.CodeType | None, str | None]:
    """Plain ``compile``: only for ``SandboxConfig(language_barrier=False)``, which tests the OS layers."""
    try:
        return compile(source, f"<tool {name}>", "exec"), None
    except (SyntaxError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


class ToolSession:
    """The tools and world state of one episode inside a worker.

    Args:
        codes: tool name to source.
        stateful: whether calls receive ``data``.
        data: the episode's world state (already a private copy, decoded from the parent's JSON).
        seed: seed of the session's ``random`` generator; None draws one from the OS.
        memory_mb: the worker's memory limit, for error messages.
        restricted: compile under RestrictedPython with the guarded builtins (always, except in the
            test suite that shows what the OS boundary stops on its own).
        precompiled: tool name to ``(code, error)`` as the sandbox's compiler process compiled it; tools
            not in it are compiled here.
    """

    def __init__(self, codes: dict[str, str], stateful: bool, data: Any, seed: int | None,
                 memory_mb: int, *, restricted: bool = True,
                 precompiled: dict[str, tuple[types.CodeType | None, str | None]] | None = None) -> None:
        self.codes = codes
        self.stateful = stateful
        self.data = data
        self.memory_mb = memory_mb
        self.decimal_context = _fresh_decimal_context()
        self._seed = seed
        self._functions: dict[str, Callable[..., Any] | str] = {}
        self._modules: dict[str, dict[str, Any]] = {}  # source -> its module globals, run once per session
        self._builtins = dict(_BASE_BUILTINS)
        self._builtins["__import__"] = SessionImporter(self._make_rng)
        self._restricted = restricted
        self._precompiled = precompiled or {}

    def _make_rng(self) -> random.Random:
        return random.Random(self._seed)

    def _load(self, name: str) -> Callable[..., Any] | str:
        """The tool's function, or its error line (compiled once per worker, executed once per session)."""
        source = self.codes.get(name)
        if source is None:
            return messages.unknown_tool(name, list(self.codes))
        compiled = self._precompiled.get(name)
        code, error = compiled if compiled is not None else compile_source(name, source, self._restricted)
        if code is None:
            loaded: Callable[..., Any] | str = messages.not_compiled(name, error or "unknown error")
        else:
            try:
                namespace = self._module(source, code)
                function = namespace.get(name)
                loaded = function if callable(function) else messages.not_loaded(
                    name, f"its code does not define a function named {name!r}")
            except MemoryError:
                loaded = messages.out_of_memory(name, self.memory_mb)
            except BaseException as exc:  # noqa: BLE001 - module code is untrusted
                loaded = messages.not_loaded(name, _describe(exc))
        self._functions[name] = loaded
        return loaded

    def _module(self, source: str, code: types.CodeType) -> dict[str, Any]:
        """The module globals of a tool's source, run once per session: tools that share one source (the
        methods of a class-based toolset) share its globals, and so one instance per episode."""
        namespace = self._modules.get(source)
        if namespace is None:
            namespace = {"__builtins__": self._builtins if self._restricted else builtins, "__name__": _MODULE_NAME}
            exec(code, namespace)  # noqa: S102 - restricted bytecode, guarded namespace
            self._modules[source] = namespace
        return namespace

    def call(self, name: str, arguments: dict[str, Any], output_limit: int) -> Reply:
        """Run one tool call and render its result; every failure becomes an error reply."""
        start = time.perf_counter()
        function = self._functions.get(name)
        if function is None:
            function = self._load(name)
        if type(function) is str:
            return self._error(function, start)
        if self.stateful:
            arguments["data"] = self.data
        try:
            value = function(**arguments)
        except MemoryError:
            return self._error(messages.out_of_memory(name, self.memory_mb), start)
        except TypeError as exc:
            return self._error(self._type_error(name, exc), start)
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... are contained
            return self._error(messages.raised(name, _describe(exc)), start)
        try:
            kind, text = render(value, output_limit)
        except MemoryError:
            return self._error(messages.out_of_memory(name, self.memory_mb), start)
        except BaseException as exc:  # noqa: BLE001 - __str__ and __eq__ of the value are tool code
            return self._error(messages.bad_result(name, _describe(exc)), start)
        return kind, text, time.perf_counter() - start

    @staticmethod
    def _error(line: str, start: float) -> Reply:
        return ERROR, line.encode("utf-8", "replace"), time.perf_counter() - start

    def _type_error(self, name: str, exc: TypeError) -> str:
        traceback = exc.__traceback__
        if traceback is not None and traceback.tb_next is None:
            detail = _describe(exc).split(": ", 1)[-1]
            detail = detail.split("() ", 1)[-1] if "() " in detail else detail
            return messages.bad_arguments(name, detail)
        return messages.raised(name, _describe(exc))
