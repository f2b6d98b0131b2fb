"""BFCL's multi-turn API classes run unchanged as sandbox toolsets: gold trajectories give the same
results and the same state as BFCL's classes run in-process."""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import inspect
import json
import random

import pytest

from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("bfcl_eval") is None, reason="bfcl-eval is optional"),
    pytest.mark.slow,
]

TASKS = 8
"""multi_turn_base tasks replayed at least (a seeded sample, grown until it covers all eight classes)."""


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


def _bfcl_text(value) -> str:
    """The text BFCL's multi-turn executor records for a method's return value."""
    if type(value) is str:
        return value
    if type(value) is dict:
        try:
            return json.dumps(value)
        except TypeError:
            return str(value)
    return str(value)


def test_an_unused_import_is_dropped_and_a_used_one_still_refused():
    from ftrl_gym.bfcl.toolsets import drop_unused_imports

    module = "import datetime\nimport subprocess\nfrom os import (\n    path,\n)\n\ndef f():\n    return datetime.date(2024, 1, 1)\n"
    assert drop_unused_imports(module) == "import datetime\n\ndef f():\n    return datetime.date(2024, 1, 1)\n"
    used = "import subprocess\n\ndef f():\n    return subprocess.run(['id'])\n"
    assert drop_unused_imports(used) == used
    with Sandbox() as sandbox, sandbox.open_session({"f": used}, seed=0) as session:
        text = session.call([ToolCall("f", {})])[0].text
    assert text.startswith("error: tool 'f' could not be loaded: ImportError: module 'subprocess' is not "
                           "available in the sandbox"), text


def test_math_api_logarithm_gives_bfcls_own_text():
    from ftrl_gym.bfcl.toolsets import toolset_source

    host = _host_instance("MathAPI", None)
    cases = [(8, 2, 10), (10, 3, 30), (-8, 2, 10), (8, 1, 10), (2.5, 10, 4), (1e-300, 10, 20)]
    with Sandbox() as sandbox, sandbox.open_session({"api_logarithm": toolset_source("MathAPI")}, seed=0) as session:
        for value, base, precision in cases:
            got = session.call([ToolCall("api_logarithm", {"value": value, "base": base, "precision": precision})])[0]
            assert got.text == _bfcl_text(host.logarithm(value, base, precision)), (value, base, precision)
    assert got.text == "{'result': mpf('-299.99999999999999998916')}"  # 1e-300 is not exactly 10**-300


def test_all_eight_classes_replay_gold_trajectories_identically():
    from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

    from ftrl_gym.bfcl.toolsets import (
        METHOD_PREFIX,
        MULTI_TURN_CLASSES,
        load_function,
        public_methods,
        toolset_source,
    )

    loadable = sorted(MULTI_TURN_CLASSES)
    shuffled = load_dataset_entry("multi_turn_base")
    random.Random(0).shuffle(shuffled)
    sample: list[dict] = []
    for entry in shuffled:  # the first tasks of a seeded order, until every class has one and there are TASKS
        if len(sample) < TASKS or not set(entry["involved_classes"]) <= {c for e in sample for c in e["involved_classes"]}:
            sample.append(entry)
        if len(sample) >= TASKS and {c for e in sample for c in e["involved_classes"]} == set(loadable):
            break
    truths = {g["id"]: g["ground_truth"] for g in load_ground_truth_entry("multi_turn_base")}
    sources = {c: toolset_source(c) for c in loadable}
    calls = turns = 0
    seen: set[str] = set()
    with Sandbox(SandboxConfig(timeout_s=60)) as sandbox:
        for entry in sample:
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
                        expected = _bfcl_text(getattr(hosts[owner], method)(**copy.deepcopy(arguments)))
                        got = session.call([ToolCall(f"{METHOD_PREFIX}{method}", arguments)])[0]
                        assert got.text == expected, (entry["id"], call)
                        calls += 1
                    states = session.call([ToolCall(f"api_state_{c}", {}) for c in classes])
                    assert [s.text for s in states] == [_state(hosts[c]) for c in classes], entry["id"]
                    turns += 1
            seen.update(classes)
    assert seen == set(loadable)  # all eight
    assert calls >= 40 and turns >= 30
