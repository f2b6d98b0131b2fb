"""The compile-time policy and the module proxies, checked in-process (no worker needed)."""

from __future__ import annotations

import types

import pytest

from ftrl_gym.sandbox.modules import SHARED_PROXIES, SessionImporter
from ftrl_gym.sandbox.policy import compile_tool


@pytest.mark.parametrize("body", [
    "obj.__secret += 1", "obj.__dict__ += {}", "obj.f_globals += 1", "x = obj.__class__",
    "x = __builtins__", "import os as _getattr_", "_write_ = obj", "from json import _default_encoder",
    "obj.__name__ = 'x'", "x = obj.__globals__", "exec('1')", "async def g():\n    pass",
])
def test_policy_rejects_forbidden_constructs(body: str) -> None:
    code, error = compile_tool("f", f"def f(obj=None):\n    {body}\n")
    assert code is None and error


def test_policy_rewrites_augmented_item_and_attribute_assignment() -> None:
    code, error = compile_tool("f", "def f(d, o):\n    d['k'] += 1\n    o.n -= 2\n    d['s'][1:2] *= 3\n")
    assert error is None and code is not None
    names = set(code.co_consts[0].co_names) if isinstance(code.co_consts[0], types.CodeType) else set()
    names |= {n for c in code.co_consts if isinstance(c, types.CodeType) for n in c.co_names}
    assert {"_aug_setitem_", "_aug_setattr_"} <= names


def test_compiled_code_is_cached_by_source() -> None:
    source = "def cached():\n    return 1\n"
    assert compile_tool("cached", source)[0] is compile_tool("cached", source)[0]


def test_module_proxies_hold_no_modules_or_shared_mutable_data() -> None:
    for module_name, proxy in SHARED_PROXIES.items():
        for name in dir(proxy):
            value = getattr(proxy, name)
            assert not isinstance(value, types.ModuleType), (module_name, name)
            assert type(value) not in (dict, list, set, bytearray), (module_name, name)
            if isinstance(value, type):
                for klass in value.__mro__[:-1]:
                    for attr, member in vars(klass).items():
                        mutable = isinstance(member, (dict, list, set, bytearray, types.ModuleType))
                        assert attr.startswith("_") or not mutable, (module_name, name, attr)


def test_module_proxies_are_read_only_and_random_is_per_session() -> None:
    with pytest.raises(AttributeError, match="read-only"):
        SHARED_PROXIES["json"].dumps = None
    first = SessionImporter(lambda: __import__("random").Random(1))("random")
    second = SessionImporter(lambda: __import__("random").Random(1))("random")
    assert first is not second and first.random() == second.random()
    with pytest.raises(ImportError, match="not available in the sandbox; allowed: collections"):
        SessionImporter(lambda: None)("os")
