"""Read-only proxies of the whitelisted standard-library modules, and the sandbox's ``__import__``.

Tool code never sees a real module object: a real ``json`` or ``datetime`` leads back to ``sys`` and
``builtins`` through public attribute names (``json.codecs``, ``datetime.sys``), and the real ``random``
shares one generator between episodes. A proxy holds only functions, classes and immutable constants of
its module; ``random`` is rebuilt per session around the session's own ``random.Random``.
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

from ftrl_gym.sandbox.guards import is_sandbox_class, is_sandbox_function

ALLOWED_MODULES = ("collections", "copy", "datetime", "decimal", "fractions", "functools", "itertools",
                   "json", "math", "random", "re", "statistics", "string", "typing")
"""Modules tool code may import (plus ``__future__``, which only switches compiler features)."""

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), frozenset, tuple, datetime.tzinfo)

_EXCLUDED: dict[str, frozenset[str]] = {
    "string": frozenset({"Formatter"}),  # vformat/get_field traverse attributes and items
    "functools": frozenset({"RLock"}),
    "typing": frozenset(),
}

_TYPING_NAMES = (  # not Type: calling typing.Type(...) calls type() with three arguments
    "AbstractSet", "Annotated", "Any", "AnyStr", "Callable", "ClassVar", "Collection", "Container",
    "Counter", "DefaultDict", "Deque", "Dict", "Final", "FrozenSet", "Generator", "Generic", "Hashable",
    "Iterable", "Iterator", "List", "Literal", "Mapping", "MutableMapping", "MutableSequence",
    "MutableSet", "NamedTuple", "NoReturn", "Optional", "OrderedDict", "Sequence", "Set", "Sized",
    "SupportsFloat", "SupportsInt", "Text", "Tuple", "TypeVar", "TypedDict", "Union", "cast",
    "TYPE_CHECKING",
)


C_LAZY_IMPORTS = ("_strptime", "time", "locale", "calendar", "unicodedata", "warnings")
"""Modules that C code of the whitelisted modules imports on first use (``datetime.strptime`` needs
``_strptime``, ``strftime`` needs ``time``): loaded when the worker starts, see :class:`SessionImporter`."""

for _name in C_LAZY_IMPORTS:
    importlib.import_module(_name)



class ModuleProxy:
    """An immutable stand-in for a module: attribute reads only, from a fixed table."""

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


def _is_safe_value(value: Any) -> bool:
    """Whether a module attribute may be shared between sessions: no modules, no mutable data, no
    methods bound to a hidden shared instance."""
    if isinstance(value, (types.ModuleType, types.MethodType)):
        return False
    if isinstance(value, types.BuiltinMethodType):
        return isinstance(value.__self__, (types.ModuleType, type, type(None)))
    return callable(value) or isinstance(value, _IMMUTABLE)


def _require_sandbox_target(obj: Any, what: str) -> None:
    if not (is_sandbox_function(obj) or is_sandbox_class(obj)):
        raise TypeError(f"{what} only applies to functions and classes defined by the tool")


def _safe_update_wrapper(wrapper: Any, wrapped: Any,
                         assigned: tuple[str, ...] = functools.WRAPPER_ASSIGNMENTS,
                         updated: tuple[str, ...] = functools.WRAPPER_UPDATES) -> Any:
    _require_sandbox_target(wrapper, "functools.update_wrapper")
    return functools.update_wrapper(wrapper, wrapped, assigned, updated)


def _safe_wraps(wrapped: Any, assigned: tuple[str, ...] = functools.WRAPPER_ASSIGNMENTS,
                updated: tuple[str, ...] = functools.WRAPPER_UPDATES) -> Callable[[Any], Any]:
    return functools.partial(_safe_update_wrapper, wrapped=wrapped, assigned=assigned, updated=updated)


def _safe_total_ordering(cls: Any) -> Any:
    _require_sandbox_target(cls, "functools.total_ordering")
    return functools.total_ordering(cls)


_OVERRIDES: dict[str, dict[str, Any]] = {
    "functools": {"update_wrapper": _safe_update_wrapper, "wraps": _safe_wraps,
                  "total_ordering": _safe_total_ordering},
}


def _public_attrs(module: types.ModuleType) -> dict[str, Any]:
    """The attributes of ``module`` a proxy may expose."""
    names = _TYPING_NAMES if module is typing else [n for n in dir(module) if not n.startswith("_")]
    excluded = _EXCLUDED.get(module.__name__, frozenset())
    attrs = {n: getattr(module, n) for n in names if n not in excluded}
    attrs = {n: v for n, v in attrs.items() if _is_safe_value(v)}
    attrs.update(_OVERRIDES.get(module.__name__, {}))
    return attrs


_RANDOM_METHODS = tuple(n for n in dir(random) if not n.startswith("_")
                        and isinstance(getattr(getattr(random, n), "__self__", None), random.Random))
_RANDOM_STATIC = _public_attrs(random)

SHARED_PROXIES: dict[str, ModuleProxy] = {
    mod.__name__: ModuleProxy(mod.__name__, _public_attrs(mod))
    for mod in (collections, copy, datetime, decimal, fractions, functools, itertools, json, math, re,
                statistics, string, typing)
}
SHARED_PROXIES["__future__"] = ModuleProxy(
    "__future__", {n: getattr(__future__, n) for n in __future__.all_feature_names})


def random_proxy(rng: random.Random) -> ModuleProxy:
    """A ``random`` module whose functions draw from ``rng`` (one generator per session)."""
    attrs = dict(_RANDOM_STATIC)
    attrs.update({name: getattr(rng, name) for name in _RANDOM_METHODS})
    return ModuleProxy("random", attrs)


class SessionImporter:
    """The ``__import__`` of one session: whitelisted proxies only, ``random`` bound to the session."""

    __slots__ = ("_random", "_rng_factory")

    def __init__(self, rng_factory: Callable[[], random.Random]) -> None:
        self._rng_factory = rng_factory
        self._random: ModuleProxy | None = None

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
        proxy = SHARED_PROXIES.get(name)
        if proxy is None:
            allowed = ", ".join(ALLOWED_MODULES)
            raise ImportError(f"module {name!r} is not available in the sandbox; allowed: {allowed}")
        return proxy
