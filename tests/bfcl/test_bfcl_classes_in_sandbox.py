"""BFCL's multi-turn API classes run unchanged as sandbox toolsets: gold trajectories give the same
results and the same state as BFCL's classes run in-process."""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import inspect
import random

import pytest

from ftrl_gym.reward import result_text
from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("bfcl_eval") is None, reason="bfcl-eval is optional"),
    pytest.mark.slow,
]

TASKS = 8
"""multi_turn_base tasks replayed (a seeded sample of those whose classes all load in the sandbox)."""


def _host_instance(class_name: str, config: dict | None):
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    instance = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]), class_name)()
    if config is not None and hasattr(instance, "_load_scenario"):
        instance._load_scenario(copy.deepcopy(config), long_context=False)
    return instance


def _parse(call: str, instances: dict) -> tuple[str, str, dict]:
    """``cd(folder='x')`` → (class, method, keyword arguments), positional ones bound by name."""
    node = ast.parse(call, mode="eval").body
    name = node.func.id
    owner = next(c for c, instance in instances.items() if hasattr(instance, name))
    args = [ast.literal_eval(a) for a in node.args]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    bound = inspect.signature(getattr(instances[owner], name)).bind(*args, **kwargs)
    return owner, name, dict(bound.arguments)


def _state(instance) -> str:
    """BFCL's state check compares the instance's attributes that do not start with ``_``."""
    return repr([(k, v) for k, v in vars(instance).items() if not k.startswith("_")])


def test_gorilla_file_system_and_math_api_are_refused_naming_the_module():
    from ftrl_gym.bfcl.toolsets import public_methods, toolset_source

    with Sandbox() as sandbox:
        for class_name, module in (("GorillaFileSystem", "subprocess"), ("MathAPI", "mpmath")):
            tool = f"api_{public_methods(class_name)[0]}"
            with sandbox.open_session({tool: toolset_source(class_name)}, seed=0) as session:
                text = session.call([ToolCall(tool, {})])[0].text
            assert text.startswith(f"error: tool {tool!r} could not be loaded: ImportError: module {module!r} "
                                   "is not available in the sandbox"), text


def test_six_of_the_eight_classes_replay_gold_trajectories_identically():
    from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

    from ftrl_gym.bfcl.toolsets import (
        METHOD_PREFIX, MULTI_TURN_CLASSES, SANDBOX_REFUSES, load_function, public_methods, toolset_source,
    )

    loadable = sorted(set(MULTI_TURN_CLASSES) - set(SANDBOX_REFUSES))
    entries = [e for e in load_dataset_entry("multi_turn_base") if set(e["involved_classes"]) <= set(loadable)]
    truths = {g["id"]: g["ground_truth"] for g in load_ground_truth_entry("multi_turn_base")}
    sources = {c: toolset_source(c) for c in loadable}
    calls = turns = 0
    seen: set[str] = set()
    with Sandbox(SandboxConfig(timeout_s=60)) as sandbox:
        for entry in random.Random(0).sample(entries, TASKS):
            classes = entry["involved_classes"]
            hosts = {c: _host_instance(c, entry["initial_config"].get(c)) for c in classes}
            keys = {c: [k for k in vars(hosts[c]) if not k.startswith("_")] for c in classes}
            probed = {c: sources[c] + f"\ndef api_state_{c}():\n    return repr([(k, getattr(_instance, k)) "
                                      f"for k in {keys[c]!r}])\n" for c in classes}
            codes = {f"{METHOD_PREFIX}{m}": probed[c] for c in classes for m in public_methods(c)}
            codes |= {load_function(c): probed[c] for c in classes} | {f"api_state_{c}": probed[c] for c in classes}
            with sandbox.open_session(codes, seed=0) as session:
                loads = [ToolCall(load_function(c), {"config": entry["initial_config"].get(c, {})}) for c in classes]
                assert [r.text for r in session.call(loads)] == ["loaded"] * len(classes)
                for turn in truths[entry["id"]]:
                    for call in turn:
                        owner, method, arguments = _parse(call, hosts)
                        expected = result_text(getattr(hosts[owner], method)(**copy.deepcopy(arguments)))
                        got = session.call([ToolCall(f"{METHOD_PREFIX}{method}", arguments)])[0]
                        assert got.text == expected, (entry["id"], call)
                        calls += 1
                    states = session.call([ToolCall(f"api_state_{c}", {}) for c in classes])
                    assert [s.text for s in states] == [_state(hosts[c]) for c in classes], entry["id"]
                    turns += 1
            seen.update(classes)
    assert seen == set(loadable)  # all six, 44 calls over 34 user turns with this sample
    assert calls >= 40 and turns >= 30
