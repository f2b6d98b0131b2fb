"""The function-level allow-list of the module proxies, the guards on shared classes, and the ordinary
Python tool code may now use, checked in-process on the worker side (no worker process needed)."""

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
from ftrl_gym.sandbox.policy import compile_tool
from ftrl_gym.sandbox.runtime import ToolSession


def run(body: str, **arguments: object) -> tuple[bytes, str]:
    """Run the tool ``f`` defined by ``body`` once; returns ``(kind, text)`` (kind ``b"E"`` is an error)."""
    session = ToolSession({"f": textwrap.dedent(body).strip() + "\n"}, False, None, 0, 1024)
    kind, text, _elapsed = session.call("f", dict(arguments), 65536)
    return kind, text.decode("utf-8")


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
            return [add(1, 2), add.__name__, add.__doc__]
    """)
    assert (kind, text) == (b"J", '[30, "add", "Add two numbers."]')


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


@pytest.mark.parametrize(("expression", "owner"), [
    ("typing.List.__init__", "typing.List"), ("Exception.__init__", "class 'Exception'"),
    ("super(M, M).__init__", "'super' object"), ("M.__init__", "class 'M'"), ("len.__eq__", "object"),
    ("(1).__repr__", "'int' object"),
])
def test_special_methods_of_shared_objects_are_refused(expression: str, owner: str) -> None:
    text = error_of(f"""
        import collections, typing
        class M(collections.UserDict):
            pass
        def f():
            return str({expression})
    """)
    assert owner in text
    assert "special methods are only readable where they act on the tool's own objects" in text


@pytest.mark.parametrize(("body", "message"), [
    ("import random\ndef f():\n    return random._inst", "attribute '_inst' of <module 'random'"),
    ("import json\ndef f():\n    return json._proxy_attrs", "attribute '_proxy_attrs' of <module 'json'"),
    ("import random\ndef f():\n    return random.Random(1)._randbelow(5)", "'_randbelow' of 'Random' object"),
    ("import random\nclass R(random.Random):\n    pass\ndef f():\n    return R(1)._randbelow(5)",
     "attribute '_randbelow' of 'R' object"),
    ("import fractions\nclass F(fractions.Fraction):\n    pass\ndef f():\n    return F(1, 2)._numerator",
     "attribute '_numerator' of 'F' object"),
    ("import typing\nclass It(typing.Iterable):\n    pass\ndef f():\n    return It._dump_registry",
     "attribute '_dump_registry' of class 'It'"),
    ("class A:\n    def _h(self):\n        return 1\ndef f():\n    return super(A, A())._h",
     "'_h' of 'super'"),
])
def test_private_attributes_of_library_objects_are_refused(body: str, message: str) -> None:
    text = error_of(body)
    assert message in text and "is not accessible in the sandbox: '_' attributes are only accessible where " \
                               "the tool's own classes (or their instances) define them" in text


@pytest.mark.parametrize("statement", ['collections.Counter()._x = 1', 'setattr(random.Random(), "_x", 1)',
                                       'collections.Counter()._x += 1', 'del collections.deque()._x',
                                       'delattr(collections.Counter(), "_x")', 'json._x = 1'])
def test_private_attributes_of_library_objects_cannot_be_written(statement: str) -> None:
    text = error_of(f"import collections, json, random\ndef f():\n    {statement}\n")
    assert "AttributeError" in text
    assert "'_' attributes are only writable on the tool's own classes and their instances" in text


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


# --- ordinary Python -----------------------------------------------------------------------------------

BANK = """
from __future__ import annotations
import typing

class Account:
    \"\"\"A bank account.\"\"\"
    kind: str = "basic"
    _instances = 0

    def __init__(self, owner: str, balance: float = 0.0) -> None:
        self.owner: str = owner
        self._balance: float = balance
        self._history: typing.List[float] = []
        Account._instances += 1

    def deposit(self, amount: float) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self._balance += amount
        self._history.append(amount)

    @property
    def balance(self) -> float:
        return self._balance

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Account):
            return NotImplemented
        return self._balance == other._balance

    def __hash__(self) -> int:
        return hash(self._balance)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.owner!r}, {self._balance})"


class Savings(Account):
    def __init__(self, owner: str, balance: float = 0.0, rate: float = 0.5) -> None:
        super().__init__(owner, balance)
        self._rate = rate

    def _interest(self) -> float:
        return self._balance * self._rate

    def add_interest(self) -> None:
        self.deposit(self._interest())

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and isinstance(other, Savings)

    def __repr__(self) -> str:
        return "Savings:" + super().__repr__()


_accounts: dict[str, Account] = {}


def _open(owner: str) -> Savings:
    account = Savings(owner, 10.0)
    _accounts[owner] = account
    return account


def f(owner: str) -> dict:
    account = _open(owner)
    account.deposit(5)
    account.add_interest()
    twin = Savings("twin", 22.5)
    return {"balance": account.balance, "repr": repr(account), "type": type(account).__name__,
            "qualname": type(account).__qualname__, "doc": Account.__doc__, "history": account._history,
            "equal": account == twin, "plain_equal": account == Account("x", 22.5),
            "instances": Account._instances, "kind": Savings.kind,
            "private_getattr": getattr(account, "_rate"),
            "hasattr": [hasattr(account, "_rate"), hasattr(account, "_missing")]}
"""


def test_bank_account_with_private_fields_super_and_annotations() -> None:
    kind, text = run(BANK, owner="ann")
    assert kind == b"J", text
    assert text == ('{"balance": 22.5, "repr": "Savings:Savings(\'ann\', 22.5)", "type": "Savings", '
                    '"qualname": "Savings", "doc": "A bank account.", "history": [5, 7.5], "equal": true, '
                    '"plain_equal": false, "instances": 3, "kind": "basic", "private_getattr": 0.5, '
                    '"hasattr": [true, false]}')


@pytest.mark.parametrize(("body", "expected"), [
    ("x: int = 3\ndef f():\n    y: int = x + 1\n    z: str\n    return y", "4"),
    ("from __future__ import annotations\nx: '().__class__.__mro__' = 3\ndef f():\n    return x", "3"),
    ("class P:\n    x: int\n    y: float = 1.5\ndef f():\n    p = P()\n    p.x: int = 2\n"
     "    return p.x + p.y", "3.5"),
    ("import typing\nclass P(typing.NamedTuple):\n    x: int\n    y: int = 2\ndef f():\n"
     "    p = P(1)\n    return [p._asdict(), p._replace(x=5).x, list(P._fields)]",
     '[{"x": 1, "y": 2}, 5, ["x", "y"]]'),
    ("from typing import TypedDict\nclass Movie(TypedDict):\n    name: str\n    year: int\n"
     "def f():\n    return Movie(name='x', year=1)", '{"name": "x", "year": 1}'),
    ("from typing import Generic, TypeVar\nT = TypeVar('T')\nclass Box(Generic[T]):\n"
     "    def __init__(self, item: T) -> None:\n        self._item = item\n"
     "    def get(self) -> T:\n        return self._item\ndef f():\n    return Box[int](4).get()", "4"),
    ("d = {}\ndef f():\n    d['k']: int = 7\n    return d", '{"k": 7}'),
    ("class E(Exception):\n    def __init__(self, code):\n        super().__init__(f'code {code}')\n"
     "        self._code = code\ndef f():\n    try:\n        raise E(4)\n    except E as _e:\n"
     "        return [str(_e), _e._code, type(_e).__name__]", '["code 4", 4, "E"]'),
    ("import collections\nclass D(collections.UserDict):\n    def __getitem__(self, key):\n"
     "        return super().__getitem__(key.lower())\ndef f():\n    return D({'a': 1})['A']", "1"),
    ("class A:\n    def _x(self):\n        return 'A'\nclass B(A):\n    def _x(self):\n"
     "        return 'B' + super()._x()\ndef f():\n    return B()._x()", "BA"),
    ("def f():\n    return [type(1).__name__, f.__name__, f.__qualname__, str(len.__doc__)[:6],"
     " type(f).__module__]", '["int", "f", "f", "Return", "builtins"]'),
])
def test_ordinary_python_runs(body: str, expected: str) -> None:
    kind, text = run(body)
    assert kind != b"E", text
    assert text == expected


@pytest.mark.parametrize(("body", "message"), [
    ("_getattr_ = getattr\ndef f():\n    return 1", '"_getattr_" is a reserved name'),
    ("import json as _write_\ndef f():\n    return 1", '"_write_" is a reserved name'),
    ("def f():\n    _print = 1\n    return _print", '"_print" is a reserved name'),
    ("def f():\n    _tmp0 = 1\n    return _tmp0", '"_tmp0" is a reserved name'),
    ("class A:\n    def __init__(self):\n        self.__x = 1\ndef f():\n    return A()",
     '"__x" is an invalid attribute name: name-mangled "__" names are not supported in the sandbox; '
     'use a single underscore ("_x")'),
    ("def f():\n    __y = 1\n    return __y", '"__y" is an invalid variable name: name-mangled'),
    ("from json import _default_encoder\ndef f():\n    return 1", '"_default_encoder" cannot be imported'),
    ("def f(o):\n    o.__name__ = 'x'", '"__name__" is an invalid attribute name'),
    ("def f(o):\n    o.__doc__ += 'x'", '"__doc__" is an invalid attribute name'),
])
def test_reserved_and_mangled_names_are_rejected_at_compile_time(body: str, message: str) -> None:
    code, error = compile_tool("f", body + "\n")
    assert code is None and error is not None and message in error


def test_private_names_of_own_objects_agree_across_getattr_forms() -> None:
    kind, text = run("""
        class A:
            _tag = "class"
        def f():
            a = A()
            a._n = 1
            a._n += 2
            setattr(a, "_m", 5)
            forms = [a._n, getattr(a, "_n"), hasattr(a, "_n"), getattr(a, "_m"), A._tag, a._tag]
            delattr(a, "_m")
            del a._n
            forms += [hasattr(a, "_n"), hasattr(a, "_m"), getattr(a, "_n", "gone")]
            setattr(A, "_count", 2)
            A._count += 1
            return forms + [A._count]
    """)
    assert (kind, text) == (b"J", '[3, 3, true, 5, "class", "class", false, false, "gone", 3]')


@pytest.mark.parametrize("target", ["random.Random(1)", "json", "collections.Counter()", "typing.List",
                                    "int", "It"])
def test_refused_private_names_agree_across_getattr_forms(target: str) -> None:
    body = f"""
        import collections, json, random, typing
        class It(typing.Iterable):
            pass
        def f(form):
            obj = {target}
            if form == "attribute":
                return obj._abc_registry_clear
            if form == "getattr":
                return getattr(obj, "_abc_registry_clear")
            if form == "getattr_default":
                return getattr(obj, "_abc_registry_clear", "default")
            if form == "hasattr":
                return hasattr(obj, "_abc_registry_clear")
            if form == "setattr":
                setattr(obj, "_abc_registry_clear", 1)
            if form == "augmented":
                obj._abc_registry_clear += 1
            if form == "delattr":
                delattr(obj, "_abc_registry_clear")
            return "not refused"
    """
    for form in ("attribute", "getattr"):
        assert "'_abc_registry_clear'" in run(body, form=form)[1] and run(body, form=form)[0] == b"E"
    assert run(body, form="getattr_default") == (b"S", "default")
    assert run(body, form="hasattr") == (b"B", "False")
    for form in ("setattr", "augmented", "delattr"):
        kind, text = run(body, form=form)
        assert kind == b"E" and "AttributeError" in text and "'_abc_registry_clear'" in text, (form, text)


BLOCKED_DUNDERS = ["__class__", "__globals__", "__code__", "__closure__", "__builtins__", "__dict__",
                   "__subclasses__", "__mro__", "__bases__", "__base__", "__self__", "__func__",
                   "__getattribute__", "__reduce__", "__reduce_ex__", "__wrapped__", "__annotations__",
                   "__traceback__", "__defaults__", "__kwdefaults__", "__setattr__", "__getattr__"]
FRAME_ATTRIBUTES = ["f_back", "f_globals", "f_locals", "f_builtins", "f_code", "gi_frame", "gi_code",
                    "tb_frame", "tb_next", "cr_frame", "ag_frame", "co_code"]


@pytest.mark.parametrize("name", BLOCKED_DUNDERS + FRAME_ATTRIBUTES)
def test_dunder_and_frame_attributes_stay_blocked(name: str) -> None:
    code, error = compile_tool("f", f"def f(o):\n    return o.{name}\n")
    assert code is None and error is not None and f'"{name}"' in error
    kind, text = run(f"""
        class A:
            def m(self):
                return 1
        def f():
            g = (x for x in [1])
            objects = [f, A, A(), A().m, g, len, 1, "s", super(A, A())]
            try:
                1 / 0
            except ZeroDivisionError as e:
                objects.append(e)
            return [hasattr(o, {name!r}) for o in objects] + [getattr(o, {name!r}, None) for o in objects]
    """)
    assert (kind, text) == (b"J", "[" + ", ".join(["false"] * 10 + ["null"] * 10) + "]")
    for verb, call in (("set", f"setattr(A(), {name!r}, 1)"), ("deleted", f"delattr(A(), {name!r})")):
        text = error_of(f"class A:\n    pass\ndef f():\n    {call}\n")
        assert f"attribute {name!r} cannot be {verb} in the sandbox" in text


def test_name_dunders_must_be_strings() -> None:
    text = error_of("""
        import collections
        P = collections.namedtuple("P", "x", module=[1, 2])
        def f():
            return P.__module__
    """)
    assert "attribute '__module__' of class 'P' is not accessible in the sandbox: it is not a str" in text


def test_import_of_a_private_alias_still_fails_at_import_time() -> None:
    text = error_of("import os as _os\ndef f():\n    return _os.getcwd()\n")
    assert "ImportError: module 'os' is not available in the sandbox" in text


def test_session_importer_interface_is_unchanged() -> None:
    importer = SessionImporter(lambda: random.Random(3))
    assert importer("random").random() == random.Random(3).random()
    assert importer("json") is SHARED_PROXIES["json"]
    assert importer("json").loads("[1]") == [1]
