"""The function-level allow-list of the module proxies and the guards on shared classes, checked in-process
on the worker side (no worker process needed)."""

from __future__ import annotations

import collections
import random
import textwrap
import types

import pytest

from ftrl_gym.sandbox import guards
from ftrl_gym.sandbox.modules import (
    ALLOW_LIST,
    EXCLUDED,
    SHARED_PROXIES,
    ModuleProxy,
    SessionImporter,
    random_proxy,
)
from ftrl_gym.sandbox.runtime import ToolSession


def run(body: str, **arguments: object) -> tuple[bytes, str]:
    """Run the tool ``f`` defined by ``body`` once; returns ``(kind, text)`` (kind ``b"E"`` is an error)."""
    session = ToolSession({"f": textwrap.dedent(body).strip() + "\n"}, False, None, 0, 1024)
    kind, text, _elapsed = session.call("f", dict(arguments), 65536)
    return kind, text


def error_of(body: str) -> str:
    kind, text = run(body)
    assert kind == b"E", f"expected an error, got {text!r}"
    return text


def all_proxies() -> dict[str, ModuleProxy]:
    return {**SHARED_PROXIES, "random": random_proxy(random.Random(0))}


# --- the table is the single source of truth ----------------------------------------------------------


def test_every_exposed_name_is_in_the_table_with_a_reason() -> None:
    proxies = all_proxies()
    assert set(proxies) == set(ALLOW_LIST)
    for module, proxy in proxies.items():
        assert set(dir(proxy)) == set(ALLOW_LIST[module]), module
        for name, reason in ALLOW_LIST[module].items():
            assert isinstance(reason, str) and len(reason) > 10, (module, name)


def test_no_exposed_value_is_a_module_or_a_dunder() -> None:
    for module, proxy in all_proxies().items():
        for name in dir(proxy):
            assert not name.startswith("_"), (module, name)
            assert not isinstance(getattr(proxy, name), types.ModuleType), (module, name)


@pytest.mark.parametrize("module", sorted(set(ALLOW_LIST) - {"__future__"}))
def test_every_public_name_of_a_module_was_reviewed(module: str) -> None:
    """A new Python version's additions fail here until someone puts them in ALLOW_LIST or EXCLUDED."""
    real = __import__(module)
    public = getattr(real, "__all__", None) or [
        n for n in dir(real) if not n.startswith("_") and not isinstance(getattr(real, n), types.ModuleType)]
    allowed, excluded = set(ALLOW_LIST[module]), set(EXCLUDED[module])
    assert not allowed & excluded
    assert set(public) <= allowed | excluded, sorted(set(public) - allowed - excluded)
    assert all(hasattr(real, name) for name in allowed | excluded)
    assert all(len(reason) > 10 for reason in EXCLUDED[module].values())


def test_proxies_have_no_module_name() -> None:
    """``from m import x`` falls back to ``sys.modules[f"{m.__name__}.x"]`` when ``m.x`` is missing: a proxy
    with a ``__name__`` would hand out real submodules (``from json import decoder``)."""
    with pytest.raises(AttributeError):
        SHARED_PROXIES["json"].__name__  # noqa: B018
    text = error_of("from json import decoder\ndef f():\n    return str(decoder)\n")
    assert "cannot import name 'decoder'" in text and "json.decoder" not in text


@pytest.mark.parametrize(("module", "name"), [
    ("functools", "singledispatch"), ("functools", "singledispatchmethod"), ("typing", "get_type_hints"),
    ("typing", "ForwardRef"), ("typing", "get_args"), ("typing", "Protocol"), ("typing", "final"),
    ("typing", "overload"), ("typing", "Type"), ("decimal", "DefaultContext"), ("string", "Formatter"),
    ("re", "purge"), ("copy", "dispatch_table"),
])
def test_excluded_names_cannot_be_imported(module: str, name: str) -> None:
    assert name in EXCLUDED[module]
    assert f"cannot import name {name!r}" in error_of(f"""
        from {module} import {name}
        def f():
            return 1
    """)
    assert f"module {module!r} has no attribute {name!r}" in error_of(f"""
        import {module}
        def f():
            return str({module}.{name})
    """)


# --- escapes through stdlib helpers (issue 20) -------------------------------------------------------


def test_singledispatch_string_annotation_escape_fails() -> None:
    text = error_of("""
        import functools
        def f():
            @functools.singledispatch
            def g(x):
                return 1
            def h(x: "().__class__.__base__.__subclasses__()"):
                return 2
            g.register(h)
            return "registered"
    """)
    assert "module 'functools' has no attribute 'singledispatch'" in text


@pytest.mark.parametrize("call", [
    'functools.update_wrapper(w, f, assigned=("__globals__",))',
    'functools.update_wrapper(w, f, ("__globals__",))',
    'functools.update_wrapper(w, f, updated=("__dict__", "__globals__"))',
    'functools.wraps(f, assigned=("__code__",))(w)',
    'functools.wraps(f, (), ("__dict__",))(w)',
])
def test_update_wrapper_and_wraps_refuse_caller_chosen_attributes(call: str) -> None:
    text = error_of(f"""
        import functools
        def f():
            def w():
                pass
            {call}
            return "copied"
    """)
    assert "TypeError" in text
    assert "is not available in the sandbox (it reads and writes the attributes it names)" in text


@pytest.mark.parametrize(("call", "message"), [
    ("functools.update_wrapper(w, json.dumps)", "the wrapped object must be a function or class defined by "
                                                "the tool, not function 'dumps'"),
    ("functools.update_wrapper(collections.Counter, w)", "the wrapper must be a function or class defined by "
                                                         "the tool, not type 'Counter'"),
    ("functools.wraps(json.loads)(w)", "the wrapped object must be a function or class defined by the tool"),
    ("functools.total_ordering(collections.Counter)", "the class must be defined by the tool, not type "
                                                      "'Counter'"),
])
def test_wrapper_helpers_only_touch_tool_made_objects(call: str, message: str) -> None:
    text = error_of(f"""
        import collections, functools, json
        def f():
            def w():
                pass
            {call}
            return "patched"
    """)
    assert message in text


def test_wraps_with_defaults_still_works() -> None:
    kind, text = run("""
        import functools
        def deco(fn):
            @functools.wraps(fn, assigned=functools.WRAPPER_ASSIGNMENTS)
            def wrapper(*args, **kwargs):
                return fn(*args, **kwargs) * 10
            return wrapper
        @deco
        def add(a, b):
            \"\"\"Add two numbers.\"\"\"
            return a + b
        def f():
            return add(1, 2)
    """)
    assert (kind, text) == (b"I", "30")


@pytest.mark.parametrize("expression", [
    "typing.Iterable.register(int)", "typing.Iterable.register", "typing.Sequence.register(Mine)",
    "typing.List[int].register", "typing.SupportsInt.register", "int.mro()", "object.mro",
    "collections.Counter.mro()", "typing.Any.mro()", "type(typing.List).mro()",
    'getattr(typing.Iterable, "register")', "It.mro()[1].register(list)",
])
def test_shared_classes_are_closed_to_registry_changes(expression: str) -> None:
    text = error_of(f"""
        import collections, typing
        class Mine:
            pass
        class It(typing.Iterable):
            def __iter__(self):
                return iter([])
        def f():
            return str({expression})
    """)
    assert "AttributeError" in text
    assert ("is not accessible in the sandbox: tool code may not inspect or change the class hierarchy or "
            "ABC registry of classes it did not define") in text


def test_registry_refusal_leaves_isinstance_alone() -> None:
    run("import typing\ndef f():\n    typing.Iterable.register(int)\n")
    assert not isinstance(3, collections.abc.Iterable)


@pytest.mark.parametrize("name", ["__subclasshook__", "__init_subclass__", "__subclasses__", "__mro__",
                                  "__bases__", "__instancecheck__", "__subclasscheck__"])
def test_subclass_hooks_of_any_class_are_refused(name: str) -> None:
    kind, text = run(f"""
        import typing
        class Mine:
            pass
        def f():
            return [hasattr(obj, {name!r}) for obj in (int, typing.Iterable, Mine, Mine())]
    """)
    assert (kind, text) == (b"J", "[false, false, false, false]")
    assert f"attribute {name!r} is not accessible in the sandbox" in error_of(
        f"import typing\ndef f():\n    return getattr(typing.Iterable, {name!r})\n")


def test_tool_abcs_register_only_tool_classes() -> None:
    kind, text = run("""
        import typing
        class It(typing.Iterable):
            def __iter__(self):
                return iter([])
        class Mine:
            pass
        def f():
            It.register(Mine)
            return [isinstance(Mine(), It), isinstance([], It), It.mro()[0] is It, len(It.mro())]
    """)
    assert (kind, text) == (b"J", "[true, false, true, 4]")  # mro: It, Iterable, Generic, object
    assert ("It.register: only classes defined by the tool can be registered in the sandbox"
            in error_of("""
                import collections, typing
                class It(typing.Sequence):
                    pass
                def f():
                    It.register(collections.UserDict)
            """))


@pytest.mark.parametrize("call", ['collections.UserString("{0.__class__}").format(1)',
                                  'collections.UserString.format(collections.UserString("{0.__init__}"), 1)',
                                  'collections.UserString("{x.__class__}").format_map({"x": 1})',
                                  'U("{0.__class__.__mro__}").format(1)'])
def test_user_string_format_is_guarded_like_str_format(call: str) -> None:
    text = error_of(f"""
        import collections
        class U(collections.UserString):
            pass
        def f():
            return {call}
    """)
    assert "is not allowed in the sandbox: only plain names and positions" in text
    plain = 'import collections\ndef f():\n    return collections.UserString("{0}-{x}").format(1, x=2)\n'
    assert run(plain) == (b"S", "1-2")


def test_a_library_base_with_a_python_setattr_makes_tool_instances_read_only() -> None:
    """``typing``'s aliases forward ``setattr`` to their origin class: a tool subclass of such a class must
    not turn ``obj.x = v`` into a write on a shared class."""

    class Forwarding:
        def __setattr__(self, name: str, value: object) -> None:
            setattr(collections.Counter, name, value)

    tool_class = guards.build_class("Tool", (Forwarding,), {"__module__": "tool"})
    assert isinstance(guards.guarded_write(tool_class()), guards._ReadOnly)
    instance = guards.build_class("Plain", (), {"__module__": "tool"})()
    assert guards.guarded_write(instance) is instance
    assert "Cannot subclass special typing classes" in error_of(
        "import typing\nclass E(type(typing.List)):\n    pass\ndef f():\n    return 1\n")


def test_session_importer_interface_is_unchanged() -> None:
    importer = SessionImporter(lambda: random.Random(3))
    assert importer("random").random() == random.Random(3).random()
    assert importer("json") is SHARED_PROXIES["json"]
    assert importer("json").loads("[1]") == [1]
