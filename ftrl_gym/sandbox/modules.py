"""Read-only proxies of the whitelisted standard-library modules, and the sandbox's ``__import__``.

Tool code never sees a real module object: a real ``json`` or ``datetime`` leads back to ``sys`` and
``builtins`` through public attribute names (``json.codecs``, ``datetime.sys``), and the real ``random``
shares one generator between episodes. A proxy holds exactly the names of its module's :data:`ALLOW_LIST`
table, each listed with the reason it is safe (helpers that evaluate strings, register globally or traverse
caller-chosen attribute names are left out or replaced); ``random`` is rebuilt per session around the
session's own ``random.Random``.
"""

from __future__ import annotations
import __future__

import collections
import copy
import datetime
import decimal
import fractions
import functools
import importlib
import itertools
import json
import math
import random
import re
import statistics
import string
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ftrl_gym.sandbox import mpmath_proxy
from ftrl_gym.sandbox.guards import is_sandbox_class, is_sandbox_function

ALLOWED_MODULES = ("collections", "copy", "datetime", "decimal", "fractions", "functools", "itertools",
                   "json", "math", "random", "re", "statistics", "string", "typing")
"""Modules tool code may import (plus ``__future__``, which only switches compiler features)."""


def _each(reason: str, names: str) -> dict[str, str]:
    """``{name: reason}`` for every name in the space-separated ``names``."""
    return dict.fromkeys(names.split(), reason)


ALLOW_LIST: dict[str, dict[str, str]] = {
    "collections": {
        "ChainMap": "mapping over a list of mappings; plain item access only",
        "Counter": "dict subclass for counting; no hooks beyond dict's",
        "OrderedDict": "dict that remembers order",
        "UserDict": "dict wrapper class for subclassing; wraps a per-instance dict",
        "UserList": "list wrapper class for subclassing; wraps a per-instance list",
        "UserString": "str wrapper class; its format/format_map go through the sandbox's format guard",
        "defaultdict": "dict with a caller-supplied factory, called with no arguments",
        "deque": "double-ended queue",
        "namedtuple": "validates type and field names as identifiers before it builds the class",
    },
    "copy": {
        "Error": "exception class",
        "copy": "shallow copy through the object's own __reduce_ex__/__copy__ (fixed names)",
        "deepcopy": "deep copy through the object's own __reduce_ex__/__deepcopy__ (fixed names)",
        "error": "alias of copy.Error",
    },
    "datetime": {
        "MAXYEAR": "int constant",
        "MINYEAR": "int constant",
        "UTC": "the immutable UTC timezone instance",
        "date": "immutable C type",
        "datetime": "immutable C type",
        "time": "immutable C type",
        "timedelta": "immutable C type",
        "timezone": "immutable C type (fixed-offset zones)",
        "tzinfo": "abstract base class for time zones the tool defines",
    },
    "decimal": {
        **_each("C class; its instances are per-caller values or contexts", "Decimal Context"),
        "DecimalTuple": "namedtuple class returned by Decimal.as_tuple()",
        "getcontext": "returns the session's own context (the worker installs one per session)",
        "localcontext": "context manager over a copy of a context",
        "setcontext": "installs a Context the tool made as the calling thread's context (the shared "
                      "contexts are not exposed)",
        **_each("rounding mode name (a str)", "ROUND_05UP ROUND_CEILING ROUND_DOWN ROUND_FLOOR "
                "ROUND_HALF_DOWN ROUND_HALF_EVEN ROUND_HALF_UP ROUND_UP"),
        **_each("int limit of context fields", "MAX_EMAX MAX_PREC MIN_EMIN MIN_ETINY"),
        **_each("bool build flag", "HAVE_CONTEXTVAR HAVE_THREADS"),
        **_each("exception / signal class", "Clamped ConversionSyntax DecimalException DivisionByZero "
                "DivisionImpossible DivisionUndefined FloatOperation Inexact InvalidContext InvalidOperation "
                "Overflow Rounded Subnormal Underflow"),
    },
    "fractions": {
        "Fraction": "immutable rational number class",
    },
    "functools": {
        "WRAPPER_ASSIGNMENTS": "tuple of str, the only assigned= the sandbox's update_wrapper accepts",
        "WRAPPER_UPDATES": "tuple of str, the only updated= the sandbox's update_wrapper accepts",
        "cache": "memoising wrapper; new cache per decorated function",
        "cached_property": "descriptor caching into the instance's own __dict__, under its attribute name",
        "cmp_to_key": "wraps a comparison function into a key class",
        "lru_cache": "memoising wrapper; new cache per decorated function",
        "partial": "C partial object; calls its function with stored arguments",
        "partialmethod": "descriptor version of partial; reads only __get__ of its function",
        "reduce": "C fold over an iterable",
        "total_ordering": "sandbox version: only for classes the tool defined (it sets their comparisons)",
        "update_wrapper": "sandbox version: default attribute tuples only, tool-made wrapper and wrapped",
        "wraps": "sandbox version: default attribute tuples only, tool-made wrapper and wrapped",
    },
    "itertools": _each("C iterator building block over caller iterables",
                       "accumulate chain combinations combinations_with_replacement compress count cycle "
                       "dropwhile filterfalse groupby islice pairwise permutations product repeat starmap "
                       "takewhile tee zip_longest"),
    "json": {
        "JSONDecodeError": "exception class",
        "JSONDecoder": "decoder class; hooks are caller callables called with decoded data",
        "JSONEncoder": "encoder class; default() is a caller hook called with the object",
        "detect_encoding": "pure function of bytes",
        "dump": "dumps, then fp.write(chunk) on the caller's object",
        "dumps": "serialises to str; cls=/default= are caller callables",
        "load": "fp.read() on the caller's object, then loads",
        "loads": "parses str/bytes; hooks are caller callables called with decoded data",
    },
    "math": {
        **_each("C function of numbers",
                "acos acosh asin asinh atan atan2 atanh cbrt ceil comb copysign cos cosh degrees dist "
                "erf erfc exp exp2 expm1 fabs factorial floor fmod frexp fsum gamma gcd hypot isclose "
                "isfinite isinf isnan isqrt lcm ldexp lgamma log log10 log1p log2 modf nextafter perm pow "
                "prod radians remainder sin sinh sqrt tan tanh trunc ulp"),
        **_each("float constant", "e inf nan pi tau"),
    },
    "random": {
        **_each("method of the session's own random.Random (never the process-wide one)",
                "betavariate choice choices expovariate gammavariate gauss getrandbits getstate "
                "lognormvariate normalvariate paretovariate randbytes randint random randrange sample seed "
                "setstate shuffle triangular uniform vonmisesvariate weibullvariate"),
        "Random": "generator class; each instance has its own state",
        "SystemRandom": "generator over os.urandom; holds no state",
        **_each("float constant", "BPF LOG4 NV_MAGICCONST RECIP_BPF SG_MAGICCONST TWOPI"),
    },
    "re": {
        **_each("matching function; a str/callable repl is expanded with group references only",
                "compile match search fullmatch findall finditer sub subn split"),
        "escape": "pure function of a str",
        "error": "exception class",
        "Pattern": "compiled pattern type (immutable, not instantiable)",
        "Match": "match result type (not instantiable)",
        **_each("RegexFlag constant (an int flag)", "A ASCII DEBUG DOTALL I IGNORECASE L LOCALE M MULTILINE "
                "NOFLAG S U UNICODE VERBOSE X"),
    },
    "statistics": {
        **_each("pure function of caller data", "correlation covariance fmean geometric_mean harmonic_mean "
                "linear_regression mean median median_grouped median_high median_low mode multimode pstdev "
                "pvariance quantiles stdev variance"),
        "NormalDist": "distribution class; samples() without seed= draws from the worker's process-wide "
                      "generator (not reproducible per session: pass seed=)",
        "StatisticsError": "exception class",
    },
    "string": {
        **_each("str constant", "ascii_letters ascii_lowercase ascii_uppercase digits hexdigits octdigits "
                "printable punctuation whitespace"),
        "capwords": "pure function of a str",
        "Template": "$-substitution by mapping lookups only (no attribute traversal)",
    },
    "__future__": _each("feature record; `from __future__ import ...` switches the feature at compile time",
                        "absolute_import annotations barry_as_FLUFL division generator_stop generators "
                        "nested_scopes print_function unicode_literals with_statement"),
    "typing": {
        **_each("generic alias of a builtin or collections type; register()/mro() through it are refused "
                "by the attribute guard",
                "AbstractSet ByteString Callable ChainMap Collection Container ContextManager Counter "
                "DefaultDict Deque Dict FrozenSet Generator Hashable ItemsView Iterable Iterator "
                "KeysView List Mapping MappingView Match MutableMapping MutableSequence MutableSet "
                "OrderedDict Pattern Reversible Sequence Set Sized Tuple ValuesView"),
        **_each("special form for annotations; subscripting builds alias objects, and strings become "
                "ForwardRefs that nothing exposed evaluates",
                "Annotated Any ClassVar Concatenate Final Literal LiteralString Never NoReturn NotRequired "
                "Optional Required Self TypeAlias TypeGuard Union Unpack"),
        **_each("runtime-checkable protocol over fixed dunder names",
                "SupportsAbs SupportsBytes SupportsComplex SupportsFloat SupportsIndex SupportsInt "
                "SupportsRound"),
        **_each("type-variable class; a str bound becomes an unevaluated ForwardRef",
                "TypeVar ParamSpec ParamSpecArgs ParamSpecKwargs TypeVarTuple"),
        "AnyStr": "the predefined TypeVar(str, bytes)",
        "Generic": "base class for generic classes the tool defines",
        "NamedTuple": "class syntax or call; builds a namedtuple (identifiers validated)",
        "NewType": "identity callable for annotations",
        "TypedDict": "class syntax or call; builds a dict subclass, annotations kept unevaluated",
        "Text": "alias of str",
        "TYPE_CHECKING": "the constant False",
        "cast": "returns its second argument",
        "assert_type": "returns its first argument",
        "assert_never": "raises AssertionError with the argument's repr",
    },
}
"""Every name tool code can import, per module, with the reason it is safe. This table is the only source
of what a proxy holds: names not listed here are not available (see :data:`EXCLUDED` for the notable ones).
Reviewed against the Python 3.11 sources of each module."""

EXCLUDED: dict[str, dict[str, str]] = {
    "collections": {},
    "copy": {"dispatch_table": "process-wide mutable dict of reducers"},
    "datetime": {"datetime_CAPI": "C API capsule"},
    "decimal": {
        **_each("a shared, mutable Context of the process", "DefaultContext BasicContext ExtendedContext"),
    },
    "fractions": {"Decimal": "re-export; import it from decimal"},
    "functools": {
        "singledispatch": "register() evaluates string annotations with typing.get_type_hints (eval)",
        "singledispatchmethod": "register() evaluates string annotations with typing.get_type_hints (eval)",
        "get_cache_token": "reveals the process-wide ABC invalidation counter",
        "recursive_repr": "reprlib helper that copies attributes of any object; not needed by tools",
        "GenericAlias": "re-export of types.GenericAlias",
        "RLock": "re-export of _thread.RLock",
        "namedtuple": "re-export; import it from collections",
    },
    "itertools": {},
    "json": {},
    "math": {},
    "random": {},
    "re": {
        "purge": "clears the process-wide pattern cache",
        "template": "deprecated in 3.11 (warns); not needed",
        "T": "flag of the deprecated re.template",
        "TEMPLATE": "flag of the deprecated re.template",
        "Scanner": "undocumented class built on sre internals",
        "RegexFlag": "the flag enum class; the flag constants cover its use",
    },
    "statistics": {"LinearRegression": "result namedtuple of linear_regression; not needed by name"},
    "string": {"Formatter": "vformat/get_field traverse attributes and items named in the format string"},
    "typing": {
        "get_type_hints": "evaluates string annotations with eval, unrestricted",
        "ForwardRef": "its _evaluate() runs eval on its string",
        **_each("returns typing internals (ForwardRef objects); not needed by tools", "get_args get_origin"),
        "Type": "calling typing.Type(...) calls type() with three arguments, bypassing the class guard",
        **_each("isinstance() against a protocol reads caller-chosen attribute names of any object",
                "Protocol runtime_checkable"),
        **_each("stores functions in a process-wide registry", "overload get_overloads clear_overloads"),
        **_each("sets attributes on its argument, which may be a shared class",
                "final no_type_check no_type_check_decorator dataclass_transform"),
        "reveal_type": "debugging aid for type checkers (writes to stderr)",
        "is_typeddict": "introspection helper; not needed by tools",
        **_each("async is not available in the sandbox", "AsyncContextManager AsyncGenerator AsyncIterable "
                "AsyncIterator Awaitable Coroutine"),
        **_each("file types; tool code has no files", "IO BinaryIO TextIO"),
    },
}
"""Public names of the allowed modules that are **not** exposed, with the reason. Together with
:data:`ALLOW_LIST` this covers each module's ``__all__`` (or public names), so that a new Python version's
additions fail a test until someone reviews them."""


C_LAZY_IMPORTS = ("_strptime", "time", "locale", "calendar", "unicodedata", "warnings", "heapq")
"""Modules that C code of the whitelisted modules imports on first use (``datetime.strptime`` needs
``_strptime``, ``strftime`` needs ``time``): loaded when the worker starts, see :class:`SessionImporter`."""

for _name in C_LAZY_IMPORTS:
    importlib.import_module(_name)



class ModuleProxy:
    """An immutable stand-in for a module: attribute reads only, from a fixed table.

    It has no ``__name__`` on purpose: when ``m.x`` is missing, ``from m import x`` falls back to
    ``sys.modules[f"{m.__name__}.x"]``, which would hand out real submodules (``from json import decoder``).
    """

    __slots__ = ("_proxy_attrs", "_proxy_name")

    def __init__(self, name: str, attrs: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_proxy_name", name)
        object.__setattr__(self, "_proxy_attrs", types.MappingProxyType(dict(attrs)))

    def __getattr__(self, attr: str) -> Any:
        try:
            return self._proxy_attrs[attr]
        except KeyError:
            raise AttributeError(f"module {self._proxy_name!r} has no attribute {attr!r} "
                                 "(or it is not available in the sandbox)") from None

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"module {self._proxy_name!r} is read-only in the sandbox")

    def __delattr__(self, attr: str) -> None:
        raise AttributeError(f"module {self._proxy_name!r} is read-only in the sandbox")

    def __dir__(self) -> list[str]:
        return sorted(self._proxy_attrs)

    def __repr__(self) -> str:
        return f"<module {self._proxy_name!r} (sandbox proxy)>"

    def __copy__(self) -> ModuleProxy:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ModuleProxy:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("sandbox modules cannot be pickled")


def _what(obj: Any) -> str:
    """``function 'dumps'``, ``type 'Counter'`` or ``a 'int' object``, for error messages."""
    name = getattr(obj, "__qualname__", None)
    return f"{type(obj).__name__} {name!r}" if isinstance(name, str) else f"a {type(obj).__name__!r} object"


def _require_tool_made(obj: Any, what: str, role: str) -> None:
    if not (is_sandbox_function(obj) or is_sandbox_class(obj)):
        raise TypeError(f"{what}: {role} must be a function or class defined by the tool, not {_what(obj)}")


def _require_default_tuples(what: str, assigned: Any, updated: Any) -> None:
    """Refuse caller-chosen attribute names: ``update_wrapper`` does getattr/setattr of each one."""
    for given, default, keyword, constant in (
            (assigned, functools.WRAPPER_ASSIGNMENTS, "assigned", "WRAPPER_ASSIGNMENTS"),
            (updated, functools.WRAPPER_UPDATES, "updated", "WRAPPER_UPDATES")):
        if given is not default and (type(given) is not tuple or given != default):
            raise TypeError(f"{what}: {keyword}= other than functools.{constant} is not available in the "
                            "sandbox (it reads and writes the attributes it names)")


def _update_wrapper(wrapper: Any, wrapped: Any, assigned: Any = functools.WRAPPER_ASSIGNMENTS,
                    updated: Any = functools.WRAPPER_UPDATES) -> Any:
    """``functools.update_wrapper`` with the default attribute tuples, between tool-made objects only."""
    _require_default_tuples("functools.update_wrapper", assigned, updated)
    _require_tool_made(wrapper, "functools.update_wrapper", "the wrapper")
    _require_tool_made(wrapped, "functools.update_wrapper", "the wrapped object")
    return functools.update_wrapper(wrapper, wrapped)


def _wraps(wrapped: Any, assigned: Any = functools.WRAPPER_ASSIGNMENTS,
           updated: Any = functools.WRAPPER_UPDATES) -> Callable[[Any], Any]:
    """``functools.wraps`` with the default attribute tuples, for a tool-made ``wrapped``."""
    _require_default_tuples("functools.wraps", assigned, updated)
    _require_tool_made(wrapped, "functools.wraps", "the wrapped object")
    return functools.partial(_update_wrapper, wrapped=wrapped)


def _total_ordering(cls: Any) -> Any:
    """``functools.total_ordering`` for classes the tool defined (it sets their comparison methods)."""
    if not is_sandbox_class(cls):
        raise TypeError(f"functools.total_ordering: the class must be defined by the tool, not {_what(cls)}")
    return functools.total_ordering(cls)


for _function, _name in ((_update_wrapper, "update_wrapper"), (_wraps, "wraps"),
                         (_total_ordering, "total_ordering")):
    _function.__name__ = _function.__qualname__ = _name
    _function.__module__ = "functools"

_OVERRIDES: dict[str, dict[str, Any]] = {
    "functools": {"update_wrapper": _update_wrapper, "wraps": _wraps, "total_ordering": _total_ordering},
}
"""Sandbox versions that replace a module's own function of the same name."""

_MODULES: dict[str, types.ModuleType] = {
    module.__name__: module
    for module in (__future__, collections, copy, datetime, decimal, fractions, functools, itertools, json,
                   math, random, re, statistics, string, typing)
}


def _module_attrs(name: str) -> dict[str, Any]:
    """The values a proxy of module ``name`` holds: exactly the names of its :data:`ALLOW_LIST` table."""
    module, overrides = _MODULES[name], _OVERRIDES.get(name, {})
    attrs = {attr: overrides[attr] if attr in overrides else getattr(module, attr)
             for attr in ALLOW_LIST[name]}
    for attr, value in attrs.items():
        if isinstance(value, types.ModuleType):
            raise TypeError(f"ALLOW_LIST[{name!r}][{attr!r}] is a module; proxies never hold modules")
    return attrs


_RANDOM_ATTRS = _module_attrs("random")
_RANDOM_METHODS = tuple(name for name, value in _RANDOM_ATTRS.items()
                        if isinstance(getattr(value, "__self__", None), random.Random))
"""Names bound to the ``random`` module's hidden shared generator: rebound to the session's own."""

SHARED_PROXIES: dict[str, ModuleProxy] = {
    name: ModuleProxy(name, _module_attrs(name)) for name in _MODULES if name != "random"
}


def random_proxy(rng: random.Random) -> ModuleProxy:
    """A ``random`` module whose functions draw from ``rng`` (one generator per session)."""
    attrs = dict(_RANDOM_ATTRS)
    attrs.update({name: getattr(rng, name) for name in _RANDOM_METHODS})
    return ModuleProxy("random", attrs)


class SessionImporter:
    """The ``__import__`` of one session: whitelisted proxies only, ``random`` bound to the session, and
    ``mpmath`` (when installed) around the session's own context (:mod:`ftrl_gym.sandbox.mpmath_proxy`)."""

    __slots__ = ("_mpmath", "_random", "_rng_factory")

    def __init__(self, rng_factory: Callable[[], random.Random]) -> None:
        self._rng_factory = rng_factory
        self._random: ModuleProxy | None = None
        self._mpmath: ModuleProxy | None = None

    def __call__(self, name: str, globals: Any = None, locals: Any = None,
                 fromlist: Any = (), level: int = 0) -> ModuleProxy | None:
        if level != 0:
            raise ImportError("relative imports are not available in the sandbox")
        if type(fromlist) is list and name in sys.modules:
            # PyImport_Import, i.e. C code of a whitelisted module (an import statement passes None or a
            # tuple): it ignores what this returns and takes the module from sys.modules itself.
            return None
        if name == "random":
            if self._random is None:
                self._random = random_proxy(self._rng_factory())
            return self._random
        if name == "mpmath" and mpmath_proxy.preload():
            if self._mpmath is None:
                self._mpmath = ModuleProxy("mpmath", mpmath_proxy.session_module())
            return self._mpmath
        proxy = SHARED_PROXIES.get(name)
        if proxy is None:
            extra = ("mpmath (mp.dps, log, mpf)",) if mpmath_proxy.preload() else ()
            allowed = ", ".join(ALLOWED_MODULES + extra)
            raise ImportError(f"module {name!r} is not available in the sandbox; allowed: {allowed}")
        return proxy
