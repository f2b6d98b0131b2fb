"""Restricted compilation of tool sources: the RestrictedPython policy and a per-process code cache."""

from __future__ import annotations

import ast
import hashlib
import types
from collections import OrderedDict

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_exec
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, IOPERATOR_TO_STR, copy_locations

from ftrl_gym.sandbox.guards import PUBLIC_UNDERSCORE_ATTRIBUTES, TOOL_FILENAME_PREFIX

EXTRA_MAGIC_METHODS = frozenset({"__str__", "__repr__", "__len__", "__hash__", "__bool__", "__iter__",
                                 "__next__", "__getitem__"})
"""Dunder methods a tool's class may define besides RestrictedPython's own list (``__init__``, ``__eq__``,
comparisons, ``__contains__``): they run as restricted code like any other method."""

CACHE_SIZE = 8192
"""Most compiled tool sources kept per process (the least recently used is dropped first)."""

CACHE_SOURCE_BYTES = 32 << 20
"""Most characters of source behind the cached code: code objects of generated tools carry their data
tables, so the cache must not eat into the worker's memory limit."""


class ToolPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus augmented assignment of items and attributes.

    ``obj[key] += v`` becomes ``_aug_setitem_(obj, key, "+=", v)`` and ``obj.name += v`` becomes
    ``_aug_setattr_(obj, "name", "+=", v)``; both write through the ``_write_`` guard.
    """

    def check_name(self, node: ast.AST, name: str | None, allow_magic_methods: bool = False) -> None:
        """Also allow the :data:`EXTRA_MAGIC_METHODS` as method names inside a class body."""
        if allow_magic_methods and name in EXTRA_MAGIC_METHODS and getattr(node, "col_offset", 0) != 0:
            return
        super().check_name(node, name, allow_magic_methods)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        """Also read the namedtuple API (``p._replace``, ``p._asdict``), through ``_getattr_`` as usual."""
        if node.attr in PUBLIC_UNDERSCORE_ATTRIBUTES and isinstance(node.ctx, ast.Load):
            call = ast.Call(func=ast.Name("_getattr_", ast.Load()),
                            args=[self.visit(node.value), ast.Constant(node.attr)], keywords=[])
            copy_locations(call, node)
            return call
        return super().visit_Attribute(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        """Rewrite augmented assignment of items and attributes into guarded helper calls."""
        target = node.target
        if isinstance(target, ast.Name):
            return super().visit_AugAssign(node)
        op = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        value = self.visit(node.value)
        if isinstance(target, ast.Subscript):
            args = [self.visit(target.value), self.visit(target.slice), op, value]
            helper = "_aug_setitem_"
        elif isinstance(target, ast.Attribute):
            if target.attr.startswith("_") or target.attr in INSPECT_ATTRIBUTES:
                self.error(node, f'"{target.attr}" is an invalid attribute name.')
                return node
            args = [self.visit(target.value), ast.Constant(target.attr), op, value]
            helper = "_aug_setattr_"
        else:
            self.error(node, "Unsupported augmented assignment target.")
            return node
        call = ast.Expr(ast.Call(func=ast.Name(helper, ast.Load()), args=args, keywords=[]))
        copy_locations(call, node)
        return call


_cache: OrderedDict[str, tuple[types.CodeType | None, str | None, int]] = OrderedDict()
_cached_chars = [0]


def compile_tool(name: str, source: str) -> tuple[types.CodeType | None, str | None]:
    """Compile one tool's source under :class:`ToolPolicy`, cached by a hash of name and source.

    Returns:
        ``(code, None)`` on success, ``(None, first error message)`` otherwise.
    """
    key = hashlib.blake2b(f"{name}\0{source}".encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit[0], hit[1]
    code, error = _compile(name, source)
    _cache[key] = (code, error, len(source))
    _cached_chars[0] += len(source)
    while len(_cache) > CACHE_SIZE or (_cached_chars[0] > CACHE_SOURCE_BYTES and len(_cache) > 1):
        _cached_chars[0] -= _cache.popitem(last=False)[1][2]
    return code, error


def _compile(name: str, source: str) -> tuple[types.CodeType | None, str | None]:
    try:
        filename = f"{TOOL_FILENAME_PREFIX}{name}>"
        compiled = compile_restricted_exec(source, filename=filename, policy=ToolPolicy)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if compiled.errors:
        return None, "; ".join(compiled.errors[:3])
    return compiled.code, None
