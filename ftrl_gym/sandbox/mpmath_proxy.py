"""The sandbox's ``mpmath``: a session's own precision, ``log`` and ``mpf``, over the real library.

BFCL's ``MathAPI.logarithm`` sets ``mpmath.mp.dps`` and divides two ``mpmath.log`` values; its result text
holds mpmath's own ``repr`` (``mpf('2.0')``). A real mpmath is no option for tool code: an ``mpf``'s public
``context`` attribute leads to the process-wide context (its precision shared by every later session) and
to helpers that generate and ``exec`` code. So each session gets a fresh ``mpmath.MPContext`` of its own,
and tool code sees it only through two opaque classes: :class:`MpContext` (``dps`` to read and set, plus
``log`` and ``mpf``) and :class:`MpNumber` (an ``mpf`` or ``mpc``: arithmetic, comparison, ``float``,
``int``, ``str`` and ``repr``, computed by mpmath itself at the session's precision). Neither has a public
attribute that returns a real mpmath object, and neither can be built by tool code (``type(x)(...)``).

mpmath is a dependency of ftrl-gym (small, pure Python); should it be missing, ``import mpmath`` fails in
tool code as any other unlisted module does.
The zygote imports mpmath (:func:`preload`) before it forks, so episode processes never read its files.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

_library: list[Any] = []
"""mpmath once :func:`preload` found it (imported on first use: the host never pays for it)."""

MPMATH_NAMES: dict[str, str] = {
    "mp": "the session's own context: 'dps' (decimal digits of precision) to read and set, no other "
          "attribute; a fresh mpmath.MPContext per session, so one session's precision never reaches another",
    "log": "mpmath's log(x[, b]) at the session's precision; returns an opaque number",
    "mpf": "mpmath's mpf(x) at the session's precision (from an int, float, str or number); opaque",
}
"""What tool code's ``mpmath`` holds, and why each is safe."""

_TOKEN = object()
"""Passed by this module's own code when it builds the opaque classes; tool code never holds it."""

_NUMBERS = (int, float, bool)
"""Exact types of the plain numbers mpmath takes as operands and precisions (never a subclass: its
methods, ``__int__`` included, are tool code)."""

_PLAIN = (*_NUMBERS, str)
"""Exact types of the plain values mpmath converts itself, and that its results may be handed back as."""


def preload() -> bool:
    """Import mpmath if it is installed (the zygote calls this before it forks); returns whether it is.
    Tool code may import the sandbox's ``mpmath`` exactly when this is True."""
    if not _library:
        try:
            import mpmath
        except ImportError:
            mpmath = None
        _library.append(mpmath)
    return _library[0] is not None


def _check_token(token: Any, what: str) -> None:
    if token is not _TOKEN:
        raise TypeError(f"{what} objects cannot be created in the sandbox; use mpmath.mpf(...)")


def _unwrap(value: Any) -> Any:
    """The mpmath value of an :class:`MpNumber`, a plain number or a str; TypeError for anything else."""
    if type(value) is MpNumber:
        return value._value
    if type(value) in _PLAIN:
        return value
    raise TypeError(f"mpmath in the sandbox takes int, float, str or mpmath numbers, not {type(value).__name__!r}")


def _wrap(value: Any, context: Any) -> Any:
    """An mpmath result as tool code sees it: numbers opaque, plain values (bool, int) as they are."""
    if isinstance(value, (context.mpf, context.mpc)):
        return MpNumber(_TOKEN, value, context)
    if type(value) in _PLAIN:
        return value
    raise TypeError(f"mpmath returned a {type(value).__name__!r}, which the sandbox does not hand to tool code")


class MpContext:
    """``mpmath.mp`` of one session: ``dps`` to read and set, ``log`` and ``mpf`` at that precision."""

    __slots__ = ("_context",)

    def __init__(self, token: Any, context: Any = None) -> None:
        _check_token(token, "mpmath context")
        self._context = context

    @property
    def dps(self) -> int:
        """Decimal digits of precision (mpmath's ``mp.dps``; 15 in a new session)."""
        return int(self._context.dps)

    @dps.setter
    def dps(self, value: Any) -> None:
        if type(value) not in _NUMBERS:
            raise TypeError(f"mpmath.mp.dps must be a number, not {type(value).__name__!r}")
        self._context.dps = value

    def log(self, x: Any, b: Any = None) -> Any:
        """mpmath's ``log(x)``, or ``log(x, b)`` in base ``b``."""
        value = self._context.log(_unwrap(x)) if b is None else self._context.log(_unwrap(x), _unwrap(b))
        return _wrap(value, self._context)

    def mpf(self, x: Any = 0) -> Any:
        """mpmath's ``mpf(x)``."""
        return _wrap(self._context.mpf(_unwrap(x)), self._context)

    def __repr__(self) -> str:
        return repr(self._context)

    def __copy__(self) -> MpContext:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> MpContext:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("the sandbox's mpmath context cannot be pickled")


def _binary(op: Callable[[Any, Any], Any], reflected: bool = False) -> Callable[[MpNumber, Any], Any]:
    def method(self: MpNumber, other: Any) -> Any:
        if type(other) is MpNumber:
            other_value = other._value
        elif type(other) in _NUMBERS:
            other_value = other
        else:
            return NotImplemented
        left, right = (other_value, self._value) if reflected else (self._value, other_value)
        return _wrap(op(left, right), self._context)

    return method


def _unary(op: Callable[[Any], Any]) -> Callable[[MpNumber], Any]:
    def method(self: MpNumber) -> Any:
        return _wrap(op(self._value), self._context)

    return method


class MpNumber:
    """An mpmath number (``mpf`` or ``mpc``) inside the sandbox: mpmath computes, tool code only sees the
    results. ``str`` and ``repr`` are mpmath's (``mpf('2.0')``)."""

    __slots__ = ("_context", "_value")

    def __init__(self, token: Any, value: Any = None, context: Any = None) -> None:
        _check_token(token, "mpmath number")
        self._value = value
        self._context = context

    __add__, __radd__ = _binary(operator.add), _binary(operator.add, True)
    __sub__, __rsub__ = _binary(operator.sub), _binary(operator.sub, True)
    __mul__, __rmul__ = _binary(operator.mul), _binary(operator.mul, True)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __pow__, __rpow__ = _binary(operator.pow), _binary(operator.pow, True)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __neg__, __pos__, __abs__ = _unary(operator.neg), _unary(operator.pos), _unary(operator.abs)

    def __float__(self) -> float:
        return float(self._value)

    def __int__(self) -> int:
        return int(self._value)

    def __complex__(self) -> complex:
        return complex(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return repr(self._value)

    def __copy__(self) -> MpNumber:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> MpNumber:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("mpmath numbers cannot be pickled in the sandbox")


def session_module() -> dict[str, Any]:
    """The names of one session's ``mpmath`` (:data:`MPMATH_NAMES`), around a fresh context.

    Raises:
        ImportError: mpmath is not installed.
    """
    if not preload():
        raise ImportError("module 'mpmath' is not available in the sandbox (it is not installed)")
    context = MpContext(_TOKEN, _library[0].MPContext())
    return {"mp": context, "log": context.log, "mpf": context.mpf}
