"""Restricted compilation of tool sources: the RestrictedPython policy and a per-process code cache."""

from __future__ import annotations

import ast
import hashlib
import re
import types
from collections import OrderedDict

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_exec
from RestrictedPython.transformer import (
    ALLOWED_FUNC_NAMES,
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    copy_locations,
)

from ftrl_gym.sandbox.guards import (
    DUNDER_METHODS,
    READABLE_DUNDERS,
    TOOL_FILENAME_PREFIX,
    is_private_name,
)

EXTRA_MAGIC_METHODS = DUNDER_METHODS - ALLOWED_FUNC_NAMES
"""Dunder methods a tool's class may define besides RestrictedPython's own list (``__init__``, ``__eq__``,
comparisons, ``__contains__``): they run as restricted code like any other method."""

CACHE_SIZE = 8192
"""Most compiled tool sources kept per process (the least recently used is dropped first)."""

CACHE_SOURCE_BYTES = 32 << 20
"""Most characters of source behind the cached code: code objects of generated tools carry their data
tables, so the cache must not eat into the worker's memory limit."""

_GUARD_NAME = re.compile(r"_.*_|_print|_tmp[0-9]+")
"""Names of the sandbox's guards and of RestrictedPython's own variables (``_getattr_``, ``_write_``,
``_print``, ``_tmp0``): tool code may not bind or read them, so it cannot replace a guard."""


def _is_mangled(name: str) -> bool:
    return name.startswith("__") and not name.endswith("__")


def _mangled_error(kind: str, name: str) -> str:
    return (f'"{name}" is an invalid {kind} name: name-mangled "__" names are not supported in the '
            f'sandbox; use a single underscore ("_{name.lstrip("_")}")')


class ToolPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, opened up for ordinary Python where the run-time guards decide.

    - ``_``-names (``_cache = {}``, ``def _helper()``) are allowed, except the guards' own names.
    - ``obj._x`` is read through ``_getattr_`` and written through ``_write_private_``, which allow it on
      the tool's own classes and instances only; ``obj.__x`` (name mangling) is rejected.
    - The :data:`~ftrl_gym.sandbox.guards.READABLE_DUNDERS` (``__name__``, ``__init__``, ...) may be read,
      through ``_getattr_``; every other dunder attribute is rejected here, as before.
    - Annotated assignments (``x: int = 3``, ``self.total: float = 0.0``) are checked like assignments.
    - ``obj[key] += v`` becomes ``_aug_setitem_(obj, key, "+=", v)`` and ``obj.name += v`` becomes
      ``_aug_setattr_(obj, "name", "+=", v)``; both write through the guards.
    """

    def check_name(self, node: ast.AST, name: str | None, allow_magic_methods: bool = False) -> None:
        """Also allow ``_``-names that are not the guards', and the :data:`EXTRA_MAGIC_METHODS` as method
        names inside a class body."""
        if name is not None and is_private_name(name):
            if _GUARD_NAME.fullmatch(name):
                self.error(node, f'"{name}" is a reserved name: names that start and end with "_", '
                                 '"_print" and "_tmpN" belong to the sandbox.')
            return
        if name is not None and _is_mangled(name):
            self.error(node, _mangled_error("variable", name))
            return
        if allow_magic_methods and name in EXTRA_MAGIC_METHODS and getattr(node, "col_offset", 0) != 0:
            return
        super().check_name(node, name, allow_magic_methods)

    def check_import_names(self, node: ast.ImportFrom | ast.Import) -> ast.AST:
        """Also reject ``from m import _x``: ``import`` reads module attributes without the guards, and the
        sandbox's modules have no ``_`` names to offer."""
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_"):
                    self.error(node, f'"{alias.name}" cannot be imported: sandbox modules have no "_" names.')
        return super().check_import_names(node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        """Let ``_x`` attributes and the readable dunders through to the run-time guards."""
        attr = node.attr
        if _is_mangled(attr):
            self.error(node, _mangled_error("attribute", attr))
            return node
        if attr in INSPECT_ATTRIBUTES or attr.endswith("__roles__"):
            return super().visit_Attribute(node)
        if isinstance(node.ctx, ast.Load) and (is_private_name(attr) or attr in READABLE_DUNDERS):
            call = ast.Call(func=ast.Name("_getattr_", ast.Load()),
                            args=[self.visit(node.value), ast.Constant(attr)], keywords=[])
            copy_locations(call, node)
            return call
        if is_private_name(attr):  # Store or Del
            args = [self.visit(node.value), ast.Constant(attr)]
            if isinstance(node.ctx, ast.Del):
                args.append(ast.Constant("deleted"))
            target = ast.Call(func=ast.Name("_write_private_", ast.Load()), args=args, keywords=[])
            copy_locations(target, node.value)
            node.value = target
            return node
        return super().visit_Attribute(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        """Allow annotated assignments: target, annotation and value are checked like any other code.

        The annotation of a module or class variable is evaluated (as a guarded expression) and stored in
        ``__annotations__``, which tool code cannot read; a function's are never evaluated.
        """
        return self.node_contents_visit(node)

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
            attr = target.attr
            if attr.startswith("__") or attr in INSPECT_ATTRIBUTES or attr.endswith("__roles__"):
                self.error(node, _mangled_error("attribute", attr) if _is_mangled(attr)
                           else f'"{attr}" is an invalid attribute name.')
                return node
            args = [self.visit(target.value), ast.Constant(attr), op, value]
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
