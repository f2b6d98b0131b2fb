"""BFCL's multi-turn API classes as sandbox toolsets: one module per class, one instance per episode."""

from __future__ import annotations

import importlib
import inspect
import re

from ftrl_gym.bfcl import source

MULTI_TURN_CLASSES: tuple[str, ...] = (
    "GorillaFileSystem", "MathAPI", "MessageAPI", "TwitterAPI", "TicketAPI", "TradingBot", "TravelAPI",
    "VehicleControlAPI",
)
"""The eight stateful API classes of BFCL's multi-turn categories."""

SANDBOX_REFUSES: dict[str, str] = {
    "GorillaFileSystem": "its module imports subprocess (never used by the class), a module the sandbox "
                         "does not allow: no tool may start processes",
    "MathAPI": "its logarithm method uses mpmath, a third-party module outside the sandbox's allow-list",
}
"""Classes whose source does not load in the sandbox unchanged, and why."""

METHOD_PREFIX = "api_"
"""Prefix of the module-level names that run the instance's methods (tool ``cd`` runs ``api_cd``)."""

_LONG_CONTEXT_IMPORT = re.compile(
    r"^from bfcl_eval\.eval_checker\.multi_turn_eval\.func_source_code\.long_context import \([^)]*\)\n", re.M
)


def load_function(class_name: str) -> str:
    """The toolset function that loads an episode's scenario into the class's instance."""
    return f"{METHOD_PREFIX}load_{class_name}"


def class_source(class_name: str) -> str:
    """The source of the module defining a BFCL class, with its import of BFCL's ``long_context``
    module replaced by that module's own source (the sandbox imports no package modules)."""
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    text = inspect.getsource(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]))
    if _LONG_CONTEXT_IMPORT.search(text):
        package = CLASS_FILE_PATH_MAPPING[class_name].rsplit(".", 1)[0]
        long_context = inspect.getsource(importlib.import_module(f"{package}.long_context"))
        text = long_context + "\n" + _LONG_CONTEXT_IMPORT.sub("", text)
    return text


def public_methods(class_name: str) -> list[str]:
    """The class's methods an agent may call (BFCL's function docs name the same ones)."""
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    cls = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]), class_name)
    return [name for name, _ in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")]


def toolset_source(class_name: str) -> str:
    """Tool code for every method of a class: the class's module, one instance made when the module runs
    (once per episode: the sandbox runs a source once per session and its tools share it),
    ``api_load_<class>(config, long_context)`` to load the episode's initial configuration, and
    ``api_<method> = instance.<method>`` for each public method.

    Args:
        class_name: One of :data:`MULTI_TURN_CLASSES`.

    Returns:
        Python source, the same for every task (so it is compiled once per sandbox).
    """
    source.require_bfcl()
    lines = [
        class_source(class_name),
        f"\n_instance = {class_name}()\n",
        f"def {load_function(class_name)}(config, long_context=False):",
        "    if hasattr(_instance, '_load_scenario'):",
        "        _instance._load_scenario(config, long_context=long_context)",
        "    return 'loaded'\n",
    ]
    lines += [f"{METHOD_PREFIX}{method} = _instance.{method}" for method in public_methods(class_name)]
    return "\n".join(lines) + "\n"
