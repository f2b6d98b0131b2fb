"""Run-time guards the restricted bytecode calls (``_getattr_``, ``_write_``, ...) and the safe builtins."""

from __future__ import annotations

import abc
import builtins
import collections
import decimal
import operator
import string
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
)
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from ftrl_gym.sandbox.mpmath_proxy import MpContext

TOOL_FILENAME_PREFIX = "<tool "
"""Code compiled from tool sources carries a file name starting with this (see ``policy``)."""

PUBLIC_UNDERSCORE_ATTRIBUTES = frozenset({"_asdict", "_replace", "_fields", "_field_defaults", "_make"})
"""The namedtuple API: attributes that start with ``_`` yet are public (and harmless), on any object."""

DUNDER_METHODS = frozenset({
    "__init__", "__contains__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__str__", "__repr__", "__len__", "__hash__", "__bool__", "__iter__", "__next__", "__getitem__",
})
"""Special methods a tool's class may define. Tool code may also read them where they act on its own
objects: bound to an instance or class the tool made (``super().__init__(...)``, ``self.__eq__``), or a
function the tool wrote (``Base.__init__(self)``)."""

NAME_DUNDERS = frozenset({"__name__", "__qualname__", "__doc__", "__module__"})
"""Dunder attributes tool code may read on any object (``type(x).__name__``): always a str or None."""

READABLE_DUNDERS = DUNDER_METHODS | NAME_DUNDERS
"""Every dunder attribute name tool code may read; any other ``__x__`` is refused (``__class__``,
``__globals__``, ``__dict__``, ``__subclasses__``, ...)."""

REGISTRY_ATTRIBUTES = frozenset({"mro", "register"})
"""Public attributes that inspect or change class hierarchies and ABC registries shared by the whole
process (``int.mro()``, ``typing.Iterable.register(list)``): readable on the tool's own classes only."""

PRINT_LIMIT = 65536
"""Characters of ``print`` output a call keeps (readable through RestrictedPython's ``printed``)."""

_SANDBOX_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()
_WRITABLE_TYPES = (dict, list, set, bytearray, collections.deque, decimal.Context, MpContext)
"""Besides objects of tool-made classes, what ``_write_`` lets tool code modify. None of these is shared
between sessions: module proxies expose no such instances, and each session has its own decimal context and
mpmath context (whose one writable attribute is ``dps``)."""
_FORMATTER = string.Formatter()


def is_sandbox_class(obj: Any) -> bool:
    """Whether ``obj`` is a class created by tool code."""
    return isinstance(obj, type) and obj in _SANDBOX_CLASSES


def is_sandbox_function(obj: Any) -> bool:
    """Whether ``obj`` is a function defined by tool code."""
    return isinstance(obj, types.FunctionType) and obj.__code__.co_filename.startswith(TOOL_FILENAME_PREFIX)


def build_class(name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwds: Any) -> type:
    """The ``__metaclass__`` of every ``class`` statement: create the class with the metaclass its bases
    call for, and remember it as tool-made so that its attributes may be written."""
    meta: type = type
    for base in bases:
        base_meta = type(base)
        if issubclass(base_meta, meta):
            meta = base_meta
        elif not issubclass(meta, base_meta):
            raise TypeError("metaclass conflict: the metaclasses of the bases are unrelated")
    cls = meta(name, bases, namespace, **kwds)
    _SANDBOX_CLASSES.add(cls)
    return cls


def _check_format_fields(fmt: str, depth: int = 0) -> None:
    """Reject format strings whose fields traverse attributes or items (``{0.__class__}``, ``{x[k]}``)."""
    if depth > 2:
        raise ValueError("format specification nested too deeply")
    for _literal, field, spec, _conversion in _FORMATTER.parse(fmt):
        if field and ("." in field or "[" in field):
            raise ValueError(f"format field {field!r} is not allowed in the sandbox: only plain names "
                             "and positions ({0}, {name}) are")
        if spec and "{" in spec:
            _check_format_fields(spec, depth + 1)


def _safe_format(fmt: str, /, *args: Any, **kwargs: Any) -> str:
    _check_format_fields(fmt)
    return str.format(fmt, *args, **kwargs)


def _safe_format_map(fmt: str, mapping: Any, /) -> str:
    _check_format_fields(fmt)
    return str.format_map(fmt, mapping)


def is_private_name(name: str) -> bool:
    """Whether ``name`` is a single-underscore name (``_x``): not ``_`` itself, not a dunder, not mangled."""
    return name.startswith("_") and not name.startswith("__") and name != "_"


def _describe(obj: Any) -> str:
    """A short, side-effect-free description of ``obj`` for error messages."""
    if isinstance(obj, type):
        return f"class {obj.__name__!r}"
    if type(obj).__name__ == "ModuleProxy":
        return repr(obj)
    name = getattr(obj, "_name", None) if type(obj).__module__ == "typing" else None
    return f"typing.{name}" if isinstance(name, str) else f"{type(obj).__name__!r} object"


def _first_definer(mro: tuple[type, ...], name: str) -> type | None:
    """The first class of ``mro`` whose own namespace holds ``name``."""
    for klass in mro:
        if name in vars(klass):
            return klass
    return None


def _instance_dict(obj: Any) -> dict[str, Any]:
    try:
        table = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return {}
    return table if isinstance(table, dict) else {}


def _owns_private(obj: Any, name: str, *, writing: bool) -> bool:
    """Whether tool code may read (or write) the private attribute ``name`` of ``obj``.

    ``obj`` must be a class the tool defined, an instance of one, or (for reads) ``super()`` bound to one;
    and no class the tool did not define may provide ``name`` (``Fraction._numerator``, a metaclass's
    ``_dump_registry``). A read must also find ``name`` where the tool put it: in such a class or the
    instance's own ``__dict__``, never through a ``__getattr__`` that forwards elsewhere.
    """
    if isinstance(obj, super):
        owner = obj.__self_class__
        if writing or owner is None or not is_sandbox_class(owner) or obj.__thisclass__ not in owner.__mro__:
            return False
        mro = owner.__mro__[owner.__mro__.index(obj.__thisclass__) + 1:]
        definer = _first_definer(mro, name)
        return definer is not None and is_sandbox_class(definer)
    is_class = isinstance(obj, type)
    owner = obj if is_class else type(obj)
    if not is_sandbox_class(owner) or (is_class and _first_definer(type(obj).__mro__, name) is not None):
        return False
    definer = _first_definer(owner.__mro__, name)
    if definer is not None:
        return is_sandbox_class(definer)
    return writing or (not is_class and name in _instance_dict(obj))


def _acts_on_own_object(method: Any) -> bool:
    """Whether a special method acts only on the tool's own objects: bound to an instance or class the tool
    made, or a function the tool wrote (``typing.List.__init__``, ``Exception.__init__`` act on anything)."""
    if is_sandbox_function(method):
        return True
    bound = getattr(method, "__self__", None)
    return bound is not None and (is_sandbox_class(bound) or is_sandbox_class(type(bound)))


def _refuse(obj: Any, name: str, why: str) -> AttributeError:
    return AttributeError(f"attribute {name!r} of {_describe(obj)} is not accessible in the sandbox: {why}")


def _read(obj: Any, name: str) -> Any:
    """The value of ``obj.name`` if tool code may read it, else raise :class:`AttributeError`."""
    if name in INSPECT_ATTRIBUTES:
        raise AttributeError(f"attribute {name!r} is not accessible in the sandbox")
    if name.startswith("__"):
        return _read_dunder(obj, name)
    if is_private_name(name) and name not in PUBLIC_UNDERSCORE_ATTRIBUTES:
        if not _owns_private(obj, name, writing=False):
            if _lacks(obj, name):
                raise AttributeError(f"{_describe(obj)} has no attribute {name!r}")
            raise _refuse(obj, name, "'_' attributes are only accessible where the tool's own classes (or "
                                     "their instances) define them")
    elif name in REGISTRY_ATTRIBUTES and not _is_tool_object(obj):
        raise _refuse(obj, name, "tool code may not inspect or change the class hierarchy or ABC registry "
                                 "of classes it did not define")
    value = getattr(obj, name)
    if name == "register" and isinstance(value, types.MethodType) and value.__func__ is abc.ABCMeta.register:
        return types.MethodType(_register_tool_class, value.__self__)
    return value


def _register_tool_class(abc_class: type, subclass: Any) -> Any:
    """``ABCMeta.register`` on a tool's own ABC, for classes the tool defined: registering also marks the
    registered class (``Py_TPFLAGS_SEQUENCE``/``MAPPING``), which must not reach library classes."""
    if not is_sandbox_class(subclass):
        raise TypeError(f"{abc_class.__name__}.register: only classes defined by the tool can be registered "
                        "in the sandbox (registering marks the registered class for the whole process)")
    return abc.ABCMeta.register(abc_class, subclass)


def _read_dunder(obj: Any, name: str) -> Any:
    if name in NAME_DUNDERS:
        value = getattr(obj, name)
        if value is None or type(value) is str:
            return value
        raise _refuse(obj, name, f"it is not a str but a {type(value).__name__!r}")
    if name in DUNDER_METHODS:
        method = getattr(obj, name)
        if _acts_on_own_object(method):
            return method
        raise _refuse(obj, name, "special methods are only readable where they act on the tool's own "
                                 f"objects (inside a method: super().{name}(...))")
    raise AttributeError(f"attribute {name!r} is not accessible in the sandbox")


def _is_tool_object(obj: Any) -> bool:
    """Whether ``obj`` is a class the tool defined or an instance of one."""
    return is_sandbox_class(obj) or is_sandbox_class(type(obj))


def _lacks(obj: Any, name: str) -> bool:
    """Whether a tool object simply has no attribute ``name`` (a typo, not a refusal)."""
    if isinstance(obj, super) or not _is_tool_object(obj):
        return False
    mros = (obj.__mro__, type(obj).__mro__) if isinstance(obj, type) else (type(obj).__mro__,)
    return all(_first_definer(mro, name) is None for mro in mros) and name not in _instance_dict(obj)


_CHECKED_PUBLIC_NAMES = INSPECT_ATTRIBUTES | REGISTRY_ATTRIBUTES | {"format", "format_map"}
"""Names without a leading ``_`` that :func:`guarded_getattr` checks; every other such name is read as is."""


def guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    """``_getattr_`` and the ``getattr`` builtin: public names, the :data:`READABLE_DUNDERS` where they
    are safe, ``_`` names of the tool's own objects; never modules, registries of shared classes or frames;
    ``str.format`` only with plain fields."""
    if type(name) is not str:
        raise TypeError("attribute name must be a string")
    if name[:1] != "_" and name not in _CHECKED_PUBLIC_NAMES:  # the common case, kept fast
        value = getattr(obj, name, *default)
    else:
        try:
            value = _read(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if name in ("format", "format_map"):
            return _guard_format(value)
    if isinstance(value, types.ModuleType):
        # AttributeError, not TypeError: getattr's contract, so hasattr() in tool code stays False.
        raise AttributeError(  # noqa: TRY004
            f"attribute {name!r} is a module, which is not accessible in the sandbox"
        )
    return value


def _user_string_format(self: Any, /, *args: Any, **kwargs: Any) -> str:
    return _safe_format(_user_string_data(self), *args, **kwargs)


def _user_string_format_map(self: Any, mapping: Any, /) -> str:
    return _safe_format_map(_user_string_data(self), mapping)


def _user_string_data(obj: Any) -> str:
    data = obj.data
    if not isinstance(data, str):
        raise TypeError("UserString.format needs str data in the sandbox")
    return data


_SAFE_FORMATS: tuple[tuple[Any, Callable[..., str]], ...] = (
    (str.format, _safe_format), (str.format_map, _safe_format_map),
    (collections.UserString.format, _user_string_format),
    (collections.UserString.format_map, _user_string_format_map),
)
"""Each ``format``/``format_map`` that formats with a caller's template, and its guarded version."""


def _safe_version(function: Any) -> Callable[..., str] | None:
    """The guarded version of ``function`` (compared by identity: tool objects may be unhashable)."""
    for original, safe in _SAFE_FORMATS:
        if function is original:
            return safe
    return None


def _guard_format(method: Any) -> Any:
    """Replace ``str.format``/``format_map`` however they were reached (a str, a str subclass, ``super()``,
    ``collections.UserString``, bound or not) by versions that refuse attribute and item traversal in the
    format string."""
    safe = _safe_version(method)
    if safe is not None:
        return safe
    if type(method) is types.BuiltinMethodType and isinstance(method.__self__, str):
        safe = _safe_format if method.__name__ == "format" else _safe_format_map
        return types.MethodType(safe, method.__self__)
    if isinstance(method, types.MethodType):
        safe = _safe_version(method.__func__)
        if safe is not None:
            return types.MethodType(safe, method.__self__)
    return method


def guarded_hasattr(obj: Any, name: str) -> bool:
    """``hasattr`` through :func:`guarded_getattr`."""
    try:
        guarded_getattr(obj, name)
    except AttributeError:
        return False
    return True


def _has_python_attribute_hooks(cls: type) -> bool:
    """Whether ``cls`` sets or deletes attributes through a ``__setattr__``/``__delattr__`` written in Python.

    Tool code cannot define one, so it comes from a library base class, and it may forward the write
    elsewhere (``typing``'s aliases set attributes on their origin class)."""
    for hook in ("__setattr__", "__delattr__"):
        definer = _first_definer(cls.__mro__, hook)
        if definer is not None and isinstance(vars(definer)[hook], types.FunctionType):
            return True
    return False


def _is_writable(obj: Any) -> bool:
    if _is_tool_object(obj):
        return not _has_python_attribute_hooks(type(obj))
    return isinstance(obj, _WRITABLE_TYPES)


class _ReadOnly:
    """What ``_write_`` hands back for objects tool code may not modify: every write fails."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        name = type(target).__name__
        what = ("modules are read-only" if name == "ModuleProxy"
                else f"objects of type {name!r} cannot be modified")
        object.__setattr__(self, "_target", what)

    def _deny(self, *args: Any) -> None:
        raise TypeError(f"{self._target} in the sandbox")

    __setattr__ = __delattr__ = __setitem__ = __delitem__ = _deny


def guarded_write(obj: Any) -> Any:
    """``_write_``: the object itself when tool code may modify it, else a proxy that refuses."""
    return obj if _is_writable(obj) else _ReadOnly(obj)


def _check_attribute_write(obj: Any, name: Any, verb: str) -> None:
    """Refuse writing attribute ``name`` of ``obj`` by name: dunders, frames, mangled names, and ``_``
    names of anything but the tool's own classes and instances (where no library class defines them)."""
    if type(name) is not str:
        raise TypeError("attribute name must be a string")
    if name.startswith("__") or name in INSPECT_ATTRIBUTES:
        raise AttributeError(f"attribute {name!r} cannot be {verb} in the sandbox")
    if is_private_name(name) and not _owns_private(obj, name, writing=True):
        raise AttributeError(f"attribute {name!r} of {_describe(obj)} cannot be {verb} in the sandbox: '_' "
                             "attributes are only writable on the tool's own classes and their instances")


def write_private(obj: Any, name: str, verb: str = "set") -> Any:
    """``_write_private_``: the target of ``obj._x = value`` and (with ``verb="deleted"``) ``del obj._x``;
    the policy emits it for ``_`` names in place of ``_write_``."""
    _check_attribute_write(obj, name, verb)
    return guarded_write(obj)


def guarded_setattr(obj: Any, name: str, value: Any) -> None:
    """The ``setattr`` builtin."""
    _check_attribute_write(obj, name, "set")
    setattr(guarded_write(obj), name, value)


def guarded_delattr(obj: Any, name: str) -> None:
    """The ``delattr`` builtin."""
    _check_attribute_write(obj, name, "deleted")
    delattr(guarded_write(obj), name)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand,
    "@=": operator.imatmul,
}


def inplace_var(op: str, target: Any, value: Any) -> Any:
    """``_inplacevar_``: the result of ``target <op>= value``."""
    return _INPLACE[op](target, value)


def augmented_setitem(obj: Any, key: Any, op: str, value: Any) -> None:
    """``obj[key] <op>= value`` for the policy's rewrite of augmented item assignment."""
    guarded_write(obj)[key] = _INPLACE[op](obj[key], value)


def augmented_setattr(obj: Any, name: str, op: str, value: Any) -> None:
    """``obj.name <op>= value`` for the policy's rewrite of augmented attribute assignment."""
    _check_attribute_write(obj, name, "set")
    setattr(guarded_write(obj), name, _INPLACE[op](guarded_getattr(obj, name), value))


def guarded_getitem(obj: Any, key: Any) -> Any:
    """``_getitem_``: plain subscription (containers are guarded by what they can hold)."""
    return obj[key]


def guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``_apply_``: a call with ``*args``/``**kwargs``."""
    return func(*args, **kwargs)


def guarded_iter(obj: Iterable[Any]) -> Iterator[Any]:
    """``_getiter_``."""
    return iter(obj)


class PrintCollector:
    """``_print_``: collects what ``print`` writes, up to :data:`PRINT_LIMIT` characters, never to a file."""

    __slots__ = ("parts", "size")

    def __init__(self, _getattr_: Any = None) -> None:
        self.parts: list[str] = []
        self.size = 0

    def __call__(self) -> str:
        return "".join(self.parts)

    def _call_print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n",
                    file: Any = None, flush: bool = False) -> None:
        separator = " " if sep is None else str(sep)
        text = separator.join(str(o) for o in objects) + ("\n" if end is None else str(end))
        room = PRINT_LIMIT - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)


def safe_type(obj: Any) -> type:
    """``type(obj)`` for instances only: the type of a class is a metaclass, and calling one (like
    three-argument ``type``) would make classes that bypass ``build_class``, with any dunder methods."""
    kind = type(obj)
    if issubclass(kind, type):
        raise TypeError("type() of a class is not available in the sandbox")
    return kind


_EXTRA_BUILTINS = (
    "all", "any", "ascii", "bin", "bytearray", "bytes", "classmethod", "dict", "enumerate", "filter",
    "format", "frozenset", "iter", "list", "map", "max", "min", "next", "object", "property", "reversed",
    "set", "sorted", "staticmethod", "sum", "super", "tuple", "zip", "NotImplemented",
    "StopAsyncIteration", "RecursionError", "TimeoutError", "ConnectionError", "FileNotFoundError",
    "PermissionError",
)


def make_builtins() -> dict[str, Any]:
    """The builtins every tool module sees (the session adds ``__import__``)."""
    table: dict[str, Any] = dict(safe_builtins)
    table.update({name: getattr(builtins, name) for name in _EXTRA_BUILTINS})
    table.update({
        "__metaclass__": build_class,
        "_getattr_": guarded_getattr, "_getitem_": guarded_getitem, "_write_": guarded_write,
        "_getiter_": guarded_iter, "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence, "_apply_": guarded_apply,
        "_inplacevar_": inplace_var, "_print_": PrintCollector,
        "_aug_setitem_": augmented_setitem, "_aug_setattr_": augmented_setattr,
        "_write_private_": write_private,
        "getattr": guarded_getattr, "hasattr": guarded_hasattr, "setattr": guarded_setattr,
        "delattr": guarded_delattr, "type": safe_type, "range": range,
    })
    return table
