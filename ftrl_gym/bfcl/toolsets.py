"""BFCL's multi-turn API classes as sandbox toolsets: one module per class, one instance per episode."""

from __future__ import annotations

import ast
import importlib
import inspect
import re

from ftrl_gym.bfcl import source

MULTI_TURN_CLASSES: tuple[str, ...] = (
    "GorillaFileSystem", "MathAPI", "MessageAPI", "TwitterAPI", "TicketAPI", "TradingBot", "TravelAPI",
    "VehicleControlAPI",
)
"""The eight stateful API classes of BFCL's multi-turn categories. All eight run in the sandbox unchanged:
``GorillaFileSystem``'s module imports ``subprocess`` without using it (:func:`drop_unused_imports` drops
the line), and ``MathAPI.logarithm``'s ``mpmath`` is the sandbox's own (``ftrl_gym.sandbox.mpmath_proxy``)."""

METHOD_PREFIX = "api_"
"""Prefix of the module-level names that run the instance's methods (tool ``cd`` runs ``api_cd``)."""

_LONG_CONTEXT_IMPORT = re.compile(
    r"^from bfcl_eval\.eval_checker\.multi_turn_eval\.func_source_code\.long_context import \([^)]*\)\n", re.M
)


STATE_SNAPSHOT_SOURCE = """
def _ftrl_snapshot(value, depth=0):
    if depth > 48:
        return {"__repr__": repr(value)[:200]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_ftrl_snapshot(item, depth + 1) for item in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_ftrl_snapshot(item, depth + 1) for item in value]}
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted([_ftrl_snapshot(item, depth + 1) for item in value], key=repr)}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: _ftrl_snapshot(item, depth + 1) for key, item in value.items()}
        pairs = [[_ftrl_snapshot(key, depth + 1), _ftrl_snapshot(item, depth + 1)] for key, item in value.items()]
        return {"__items__": sorted(pairs, key=lambda pair: repr(pair[0]))}
    return {"__repr__": repr(value)}
"""
"""Turns an attribute's value into JSON that is equal exactly when the values are (``==``, as BFCL's
state check compares them): a tuple, a set, a dict with non-string keys and any other object are tagged, so that
the JSON round trip never makes two different values equal; key order is irrelevant, as for ``==``."""


RESULT_TEXT_SOURCE = """
import json as _ftrl_json

def _ftrl_bfcl_text(value):
    if type(value) == str:
        return value
    if type(value) == dict:
        try:
            return _ftrl_json.dumps(value)
        except Exception:
            return str(value)
    return str(value)

def _ftrl_as_bfcl(method):
    def call(*args, **kwargs):
        return _ftrl_bfcl_text(method(*args, **kwargs))
    return call
"""
"""Turns a method's return value into the text BFCL's multi-turn executor records: a ``str`` as it is, a
``dict`` as ``json.dumps`` or, where that fails (``MathAPI.logarithm``'s mpmath number), ``str()``, and
anything else (a list, ``None``) as ``str()``."""


def load_function(class_name: str) -> str:
    """The toolset function that loads an episode's scenario into the class's instance."""
    return f"{METHOD_PREFIX}load_{class_name}"


def state_function(class_name: str) -> str:
    """The toolset function that returns a snapshot of the instance's public attributes: the state
    probe the env reads after each user turn. It is no tool, so no agent can call it."""
    return f"{METHOD_PREFIX}state_{class_name}"


def state_attributes(class_name: str) -> list[str]:
    """The public instance attributes a class's own body ever assigns (``self.x = ...``,
    ``self.x: T = ...``), found in its source without running it: what BFCL's state check compares."""
    tree = ast.parse(class_source(class_name))
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name)
    names: set[str] = set()
    for node in ast.walk(body):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == "self" and not target.attr.startswith("_")):
                names.add(target.attr)
    return sorted(names)


def drop_unused_imports(text: str) -> str:
    """``text`` without its top-level ``import`` statements whose names the module never reads.

    A module that imports what the sandbox refuses (``subprocess``) but never uses it then loads; one
    that uses it still fails at the import, with the sandbox's own message. Lines are removed whole,
    so every other line keeps its text (and tracebacks their meaning).

    Args:
        text: A module's source.

    Returns:
        The source without the unused imports.
    """
    tree = ast.parse(text)
    read = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    unused = [
        node for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "module", None) != "__future__"
        and not any((alias.asname or alias.name.split(".")[0]) in read for alias in node.names)
    ]
    drop = {line for node in unused for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
    lines = text.splitlines(keepends=True)
    return "".join(line for number, line in enumerate(lines, 1) if number not in drop)


def class_source(class_name: str) -> str:
    """The source of the module defining a BFCL class, with its import of BFCL's ``long_context``
    module replaced by that module's own source (the sandbox imports no package modules) and its unused
    imports dropped (:func:`drop_unused_imports`)."""
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    text = inspect.getsource(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]))
    if _LONG_CONTEXT_IMPORT.search(text):
        package = CLASS_FILE_PATH_MAPPING[class_name].rsplit(".", 1)[0]
        long_context = inspect.getsource(importlib.import_module(f"{package}.long_context"))
        text = long_context + "\n" + _LONG_CONTEXT_IMPORT.sub("", text)
    return drop_unused_imports(text)


def public_methods(class_name: str) -> list[str]:
    """The class's methods an agent may call (BFCL's function docs name the same ones)."""
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    cls = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]), class_name)
    return [name for name, _ in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")]


def toolset_source(class_name: str) -> str:
    """Tool code for every method of a class: the class's module, one instance made when the module runs
    (once per episode: the sandbox runs a source once per session and its tools share it),
    ``api_load_<class>(config, long_context)`` to load the episode's initial configuration,
    ``api_state_<class>()`` to snapshot its public attributes (:data:`STATE_SNAPSHOT_SOURCE`), and
    ``api_<method>`` for each public method: the instance's method, its result turned into BFCL's text
    (:data:`RESULT_TEXT_SOURCE`).

    Args:
        class_name: One of :data:`MULTI_TURN_CLASSES`.

    Returns:
        Python source, the same for every task (so it is compiled once per sandbox).
    """
    source.require_bfcl()
    lines = [
        class_source(class_name),
        STATE_SNAPSHOT_SOURCE,
        f"\n_instance = {class_name}()\n",
        f"def {load_function(class_name)}(config, long_context=False):",
        "    if hasattr(_instance, '_load_scenario'):",
        "        _instance._load_scenario(config, long_context=long_context)",
        "    return 'loaded'\n",
        f"def {state_function(class_name)}():",
        f"    return {{name: _ftrl_snapshot(getattr(_instance, name)) for name in {state_attributes(class_name)!r}",
        "            if hasattr(_instance, name)}\n",
    ]
    lines.append(RESULT_TEXT_SOURCE)
    lines += [f"{METHOD_PREFIX}{method} = _ftrl_as_bfcl(_instance.{method})" for method in public_methods(class_name)]
    return "\n".join(lines) + "\n"
