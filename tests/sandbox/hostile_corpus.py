"""Hostile tool bodies, by class: each defines ``t()`` and must be contained by the sandbox."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from ftrl_gym.sandbox import ToolResult

SENTINEL = "/tmp/ftrl-sandbox-sentinel.txt"
"""A host file every hostile body that touches files aims at; the tests check it is untouched."""


def is_error(result: ToolResult) -> bool:
    """Contained by refusing: an error result with a one-line message."""
    return (not result.ok and result.error is not None and result.error.startswith("error: ")
            and "\n" not in result.error and result.value is None)


def error_with(*fragments: str) -> Callable[[ToolResult], bool]:
    """An error result whose message contains every fragment."""
    return lambda r: is_error(r) and all(f in (r.error or "") for f in fragments)


def is_timeout(result: ToolResult) -> bool:
    return error_with("timed out after")(result)


def is_memory_or_timeout(result: ToolResult) -> bool:
    return error_with("memory limit")(result) or is_timeout(result)


@dataclass(frozen=True)
class Case:
    """One hostile tool: its class, name, body and the check its result must pass."""

    kind: str
    name: str
    body: str
    check: Callable[[ToolResult], bool] = is_error

    @property
    def source(self) -> str:
        return textwrap.dedent(self.body).strip() + "\n"


CASES = [
    # --- dunder and introspection escapes -------------------------------------------------------
    Case("introspection", "mro_subclasses", """
        def t():
            return ().__class__.__mro__[1].__subclasses__()
    """, error_with("could not be compiled")),
    Case("introspection", "func_globals", """
        def t():
            return t.__globals__
    """, error_with("could not be compiled")),
    Case("introspection", "getattr_built_dunder", """
        def t():
            return getattr(t, "__glo" + "bals__")
    """, error_with("not accessible")),
    Case("introspection", "getattr_dunder_default", """
        def t():
            return str(getattr(1, "__cl" + "ass__", None))
    """, lambda r: r.ok and r.text == "None"),
    Case("introspection", "generator_frame", """
        def t():
            g = (x for x in [1])
            return g.gi_frame.f_back.f_globals
    """, error_with("could not be compiled")),
    Case("introspection", "generator_frame_getattr", """
        def t():
            g = (x for x in [1])
            frame = getattr(g, "gi_" + "frame")
            return getattr(frame, "f_" + "back")
    """, error_with("not accessible")),
    Case("introspection", "traceback_frame", """
        def t():
            try:
                1 / 0
            except Exception as e:
                return e.__traceback__.tb_frame.f_globals
    """, error_with("could not be compiled")),
    Case("introspection", "traceback_getattr", """
        def t():
            try:
                1 / 0
            except Exception as e:
                tb = getattr(e, "__tr" + "aceback__")
                return getattr(tb, "tb_" + "frame")
    """, error_with("not accessible")),
    Case("introspection", "type_mro_runtime", """
        def t():
            base = getattr(type(()), "__m" + "ro__")[1]
            return getattr(base, "__subcl" + "asses__")()
    """, error_with("not accessible")),
    Case("introspection", "globals_builtin", """
        def t():
            return globals()
    """, error_with("NameError")),
    Case("introspection", "vars_dir", """
        def t():
            return [vars(), dir()]
    """, error_with("NameError")),
    Case("introspection", "builtins_name", """
        def t():
            return __builtins__
    """, error_with("could not be compiled")),
    Case("introspection", "bound_self", """
        def t():
            return getattr(getattr, "__se" + "lf__")
    """, error_with("not accessible")),
    Case("introspection", "three_arg_type", """
        def t():
            k = type("K", (), {"__init_subclass__": 1})
            return str(k)
    """, error_with("TypeError")),
    Case("introspection", "metaclass_of_a_class", """
        def t():
            make = type(type(1))
            k = make("K", (), {"__del__": lambda self: None})
            return str(k)
    """, error_with("type() of a class")),
    Case("introspection", "typing_type_call", """
        import typing
        def t():
            k = typing.Type("K", (), {"__del__": lambda self: None})
            return str(k)
    """, error_with("AttributeError")),
    Case("introspection", "classmethod_metaclass", """
        class A:
            @classmethod
            def meta(cls):
                return type(cls)
        def t():
            return str(A.meta()("K", (), {}))
    """, error_with("type() of a class")),
    Case("introspection", "code_object", """
        def t():
            return t.__code__.co_consts
    """, error_with("could not be compiled")),
    Case("introspection", "singledispatch_string_annotation", """
        import functools
        def t():
            @functools.singledispatch
            def g(x):
                return 1
            def h(x: "().__class__.__base__.__subclasses__()"):
                return 2
            g.register(h)
            return "registered"
    """, error_with("AttributeError", "module 'functools' has no attribute 'singledispatch'")),
    Case("introspection", "object_mro_subclasses", """
        def t():
            return getattr(int.mro()[-1], "__subcl" + "asses__")()
    """, error_with("'mro' of class 'int' is not accessible")),
    Case("introspection", "tool_class_mro_to_library_abc", """
        import typing
        class It(typing.Iterable):
            def __iter__(self):
                return iter([])
        def t():
            return It.mro()[1].register(int)
    """, error_with("'register' of class 'Iterable' is not accessible")),
    Case("introspection", "private_attribute_of_proxy", """
        import random
        def t():
            return str(random._inst.getstate())
    """, error_with("'_inst'", "not accessible")),
    Case("introspection", "shared_alias_init", """
        import typing
        def t():
            typing.List.__init__(dict, 0)
            return str(typing.List)
    """, error_with("'__init__' of typing.List is not accessible")),
    Case("introspection", "super_unbound_library_init", """
        import collections, typing
        class M(collections.UserDict):
            pass
        def t():
            super(M, M).__init__(typing.Any)
            return "patched"
    """, error_with("'__init__' of 'super' object is not accessible")),
    # --- import tricks --------------------------------------------------------------------------
    Case("import", "import_os", """
        import os
        def t():
            return os.listdir("/")
    """, error_with("not available in the sandbox")),
    Case("import", "import_sys_inside", """
        def t():
            import sys
            return sys.modules["os"].getcwd()
    """, error_with("ImportError", "'sys'")),
    Case("import", "dunder_import", """
        def t():
            return __import__("os").getcwd()
    """, error_with("could not be compiled")),
    Case("import", "importlib", """
        def t():
            import importlib
            return importlib.import_module("os").getcwd()
    """, error_with("ImportError")),
    Case("import", "builtins_module", """
        def t():
            import builtins
            return builtins.open("/etc/passwd").read()
    """, error_with("reserved name")),
    Case("import", "json_codecs", """
        def t():
            import json
            return json.codecs.open("/etc/passwd").read()
    """, error_with("AttributeError")),
    Case("import", "from_json_codecs", """
        def t():
            from json import codecs
            return codecs.open("/etc/passwd").read()
    """, error_with("ImportError")),
    Case("import", "datetime_sys", """
        def t():
            import datetime
            return datetime.sys.modules["os"].getcwd()
    """, error_with("AttributeError")),
    Case("import", "statistics_random_module", """
        def t():
            import statistics
            return statistics.random.getstate()
    """, error_with("AttributeError")),
    Case("import", "re_enum_sys", """
        def t():
            import re
            return re.enum.sys.modules
    """, error_with("AttributeError")),
    Case("import", "collections_abc_submodule", """
        def t():
            import collections.abc
            return str(collections.abc)
    """, error_with("ImportError")),
    Case("import", "copy_dispatch_table", """
        def t():
            import copy
            copy.dispatch_table[int] = lambda x: (print, ("pwned",))
            return "patched"
    """, error_with("AttributeError")),
    Case("import", "get_type_hints", """
        from typing import get_type_hints
        def t(x: "().__class__"):
            return str(get_type_hints(t))
    """, error_with("ImportError", "'get_type_hints'")),
    Case("import", "forward_ref_evaluate", """
        import typing
        def t():
            return getattr(typing.ForwardRef("().__class__"), "_evaluate")({}, {}, frozenset())
    """, error_with("AttributeError", "'ForwardRef'")),
    Case("import", "submodule_through_from_import", """
        from json import decoder
        def t():
            return str(decoder)
    """, error_with("ImportError", "'decoder'")),
    Case("import", "relative_import", """
        from . import worker
        def t():
            return str(worker)
    """, error_with("ImportError")),
    Case("import", "star_import", """
        from json import *
        def t():
            return "x"
    """, error_with("could not be compiled")),
    Case("import", "mpmath_number_context", """
        import mpmath
        def t():
            return mpmath.log(2).context
    """, error_with("'MpNumber' object has no attribute 'context'")),
    Case("import", "mpmath_number_private_value", """
        import mpmath
        def t():
            return getattr(mpmath.mpf(2), "_val" + "ue")
    """, error_with("attribute '_value' of 'MpNumber' object is not accessible")),
    Case("import", "mpmath_context_private", """
        import mpmath
        def t():
            return getattr(mpmath.mp, "_con" + "text")
    """, error_with("attribute '_context' of 'MpContext' object is not accessible")),
    Case("import", "mpmath_context_swap", """
        import mpmath
        def t():
            setattr(mpmath.mp, "_con" + "text", 1)
    """, error_with("attribute '_context' of 'MpContext' object cannot be set")),
    Case("import", "mpmath_build_number_from_type", """
        import mpmath
        class Fake:
            pass
        def t():
            return type(mpmath.mpf(1))(None, Fake(), None)
    """, error_with("mpmath number objects cannot be created in the sandbox")),
    Case("import", "mpmath_bound_method_owner", """
        import mpmath
        def t():
            return getattr(mpmath.log, "__se" + "lf__")
    """, error_with("'__self__' is not accessible")),
    Case("import", "mpmath_submodule", """
        from mpmath import libmp
        def t():
            return libmp
    """, error_with("could not be loaded", "cannot import name 'libmp'")),
    Case("import", "mpmath_dps_from_tool_object", """
        import mpmath
        class Digits(int):
            pass
        def t():
            mpmath.mp.dps = Digits(10 ** 9)
    """, error_with("mpmath.mp.dps must be a number, not 'Digits'")),
    Case("resources", "mpmath_billion_digits", """
        import mpmath
        def t():
            mpmath.mp.dps = 10 ** 9
            return str(mpmath.log(3))
    """, is_memory_or_timeout),
    # --- files, processes, network ---------------------------------------------------------------
    Case("io", "open_write", f"""
        def t():
            with open({SENTINEL!r}, "w") as f:
                f.write("pwned")
            return "wrote"
    """, error_with("NameError")),
    Case("io", "io_module", f"""
        def t():
            import io
            return io.open({SENTINEL!r}, "w").write("pwned")
    """, error_with("ImportError")),
    Case("io", "pathlib_unlink", f"""
        def t():
            from pathlib import Path
            Path({SENTINEL!r}).unlink()
            return "deleted"
    """, error_with("ImportError")),
    Case("io", "subprocess", """
        def t():
            import subprocess
            return subprocess.check_output(["id"])
    """, error_with("ImportError")),
    Case("io", "os_system_via_exec", """
        def t():
            exec("import os; os.system('touch /tmp/pwned')")
    """, error_with("could not be compiled")),
    Case("io", "eval_call", """
        def t():
            return eval("1 + 1")
    """, error_with("could not be compiled")),
    Case("io", "compile_builtin", """
        def t():
            return compile("1", "x", "eval")
    """, error_with("NameError")),
    Case("io", "socket", """
        def t():
            import socket
            s = socket.create_connection(("1.1.1.1", 80), timeout=1)
            return "connected"
    """, error_with("ImportError")),
    Case("io", "urllib", """
        def t():
            import urllib.request
            return urllib.request.urlopen("http://example.com").read()
    """, error_with("ImportError")),
    Case("io", "ctypes", """
        def t():
            import ctypes
            return ctypes.CDLL(None).system(b"id")
    """, error_with("ImportError")),
    Case("io", "input_breakpoint", """
        def t():
            return input()
    """, error_with("NameError")),
    # --- format-string traversal -------------------------------------------------------------------
    Case("format", "format_class", """
        def t():
            return "{0.__class__}".format(1)
    """, error_with("not allowed")),
    Case("format", "format_globals", """
        def t():
            return "{0.__globals__}".format(t)
    """, error_with("not allowed")),
    Case("format", "format_item", """
        def t():
            return "{x[0]}".format(x=["secret"])
    """, error_with("not allowed")),
    Case("format", "format_map_traversal", """
        def t():
            return "{f.__globals__}".format_map({"f": t})
    """, error_with("not allowed")),
    Case("format", "str_format_unbound", """
        def t():
            return str.format("{0.__class__.__mro__}", 1)
    """, error_with("not allowed")),
    Case("format", "getattr_format", """
        def t():
            return getattr("{0.__class__}", "format")(1)
    """, error_with("not allowed")),
    Case("format", "nested_spec", """
        def t():
            return "{0:{1.__class__}}".format(1, 2)
    """, error_with("not allowed")),
    Case("format", "str_subclass_format", """
        class S(str):
            pass
        def t():
            return S.format("{0.__class__}", 1)
    """, error_with("not allowed")),
    Case("format", "super_format", """
        class S(str):
            pass
        def t():
            return super(S, S("{0.__class__}")).format(1)
    """, error_with("not allowed")),
    Case("format", "format_method_on_instance_of_subclass", """
        class S(str):
            pass
        def t():
            return S("{0.__init__.__globals__}").format(1)
    """, error_with("not allowed")),
    Case("format", "string_formatter", """
        def t():
            import string
            return string.Formatter().format("{0.__class__}", 1)
    """, error_with("AttributeError")),
    Case("format", "user_string_format", """
        import collections
        def t():
            return collections.UserString("{0.__init__.__globals__}").format(t)
    """, error_with("not allowed")),
    Case("format", "fstring_dunder", """
        def t():
            return f"{t.__globals__}"
    """, error_with("could not be compiled")),
    # --- resource exhaustion -----------------------------------------------------------------------
    Case("resources", "while_true", """
        def t():
            while True:
                pass
    """, is_timeout),
    Case("resources", "catch_baseexception_loop", """
        def t():
            while True:
                try:
                    while True:
                        pass
                except BaseException:
                    pass
    """, is_timeout),
    Case("resources", "huge_power", """
        def t():
            return 10 ** 10 ** 10
    """, is_memory_or_timeout),
    Case("resources", "huge_string", """
        def t():
            return "a" * 10 ** 10
    """, error_with("memory limit")),
    Case("resources", "huge_list", """
        def t():
            return [0] * 10 ** 9
    """, error_with("memory limit")),
    Case("resources", "growing_list", """
        def t():
            xs = []
            while True:
                xs.append("a" * 10 ** 6)
    """, is_memory_or_timeout),
    Case("resources", "deep_recursion", """
        def t():
            return t()
    """, error_with("RecursionError")),
    Case("resources", "recursion_catching", """
        def t(n=0):
            try:
                return t(n + 1)
            except RecursionError:
                return t(n + 1)
    """, is_timeout),
    Case("resources", "catastrophic_regex", """
        import re
        def t():
            return bool(re.match(r"(a+)+$", "a" * 64 + "b"))
    """, is_timeout),
    Case("resources", "infinite_iterator", """
        import itertools
        def t():
            return sum(itertools.repeat(1))
    """, is_timeout),
    Case("resources", "print_flood", """
        def t():
            for i in range(50000):
                print("x" * 100)
            return "done"
    """, lambda r: r.ok and r.text == "done"),
    Case("resources", "print_flood_forever", """
        def t():
            while True:
                print("x" * 10000)
    """, is_timeout),
    Case("resources", "huge_return_string", """
        def t():
            return "a" * 10 ** 8
    """, lambda r: r.ok and "truncated" in r.text and len(r.text.encode()) < 70000 and r.value is None),
    Case("resources", "huge_return_list", """
        def t():
            return list(range(10 ** 6))
    """, lambda r: r.ok and "truncated" in r.text and len(r.text.encode()) < 70000),
    Case("resources", "huge_int_text", """
        def t():
            return 7 ** 20000
    """, error_with("cannot be converted to text")),
    Case("resources", "deeply_nested_result", """
        def t():
            x = []
            for i in range(200000):
                x = [x]
            return x
    """, error_with("cannot be converted to text", "RecursionError")),
    Case("resources", "hostile_eq_result", """
        class Evil:
            def __eq__(self, other):
                while True:
                    pass
        def t():
            return Evil()
    """, lambda r: r.ok and "Evil object" in r.text),
    Case("resources", "hostile_str_result", """
        class Evil:
            def __str__(self):
                while True:
                    pass
        def t():
            return Evil()
    """, is_timeout),
    Case("resources", "raising_str_result", """
        class Evil:
            def __str__(self):
                raise SystemExit("no")
        def t():
            return Evil()
    """, error_with("cannot be converted to text")),
    Case("resources", "unserialisable_dict", """
        class Key:
            pass
        def t():
            return {Key(): 1}
    """, error_with("cannot be converted to text")),
    Case("resources", "hostile_exception_str", """
        class Boom(Exception):
            def __str__(self):
                while True:
                    pass
        def t():
            raise Boom()
    """, is_timeout),
    Case("resources", "module_level_loop", """
        while True:
            pass
        def t():
            return 1
    """, is_timeout),
    # --- state tampering -----------------------------------------------------------------------------
    Case("tampering", "monkeypatch_json", """
        import json
        def t():
            json.dumps = lambda *a, **k: "pwned"
            return "patched"
    """, error_with("read-only")),
    Case("tampering", "setattr_module", """
        import math
        def t():
            setattr(math, "pi", 3)
            return "patched"
    """, error_with("read-only")),
    Case("tampering", "patch_class_attribute", """
        import collections
        def t():
            collections.Counter.most_common = lambda self, n=None: "pwned"
            return "patched"
    """, error_with("cannot be modified")),
    Case("tampering", "update_wrapper_on_stdlib", """
        import functools, collections
        def t():
            functools.update_wrapper(collections.Counter, t)
            return "patched"
    """, error_with("TypeError")),
    Case("tampering", "update_wrapper_chosen_attributes", """
        import functools
        def t():
            def w():
                pass
            functools.update_wrapper(w, t, assigned=("__globals__",), updated=())
            return "copied"
    """, error_with("TypeError", "assigned=")),
    Case("tampering", "abc_register_shared", """
        import typing
        def t():
            typing.Iterable.register(int)
            return "registered"
    """, error_with("'register' of typing.Iterable is not accessible")),
    Case("tampering", "tool_abc_registers_library_class", """
        import collections, typing
        class Seq(typing.Sequence):
            pass
        def t():
            Seq.register(collections.UserDict)
            return "registered"
    """, error_with("TypeError", "only classes defined by the tool")),
    Case("tampering", "typing_final_marks_shared_class", """
        import collections, typing
        def t():
            typing.final(collections.Counter)
            return "marked"
    """, error_with("AttributeError", "'final'")),
    Case("tampering", "private_attribute_of_library_object", """
        import collections
        def t():
            collections.Counter()._keep_positive = None
            return "patched"
    """, error_with("AttributeError", "'_keep_positive'")),
    Case("tampering", "decimal_context_attribute", """
        import decimal
        def t():
            decimal.getcontext().prec = 1
            return str(decimal.Decimal(2) / decimal.Decimal(3))
    """, lambda r: r.ok and r.text == "0.7"),
    Case("tampering", "decimal_default_context", """
        import decimal
        def t():
            decimal.DefaultContext.prec = 1
            return "patched"
    """, error_with("AttributeError")),
    Case("tampering", "write_builtin_function", """
        def t():
            len.x = 1
            return "patched"
    """, error_with("cannot be modified")),
    Case("tampering", "reseed_rng", """
        import random
        def t():
            random.seed(0)
            random.setstate(random.getstate())
            return random.random()
    """, lambda r: r.ok and isinstance(r.value, float)),
    # --- host crash attempts -------------------------------------------------------------------------
    Case("crash", "system_exit", """
        def t():
            raise SystemExit(1)
    """, error_with("SystemExit")),
    Case("crash", "keyboard_interrupt", """
        def t():
            raise KeyboardInterrupt
    """, error_with("KeyboardInterrupt")),
    Case("crash", "generator_exit", """
        def t():
            raise GeneratorExit
    """, error_with("GeneratorExit")),
    Case("crash", "custom_base_exception", """
        class Boom(BaseException):
            pass
        def t():
            raise Boom("bye")
    """, error_with("Boom")),
    Case("crash", "os_exit", """
        def t():
            import os
            os._exit(1)
    """, error_with("ImportError", "'os'")),
    Case("crash", "os_exit_runtime_name", """
        def t():
            import os
            return getattr(os, "_exit")(1)
    """, error_with("ImportError")),
    Case("crash", "exit_builtin", """
        def t():
            exit(1)
    """, error_with("NameError")),
    Case("crash", "signal_kill", """
        def t():
            import signal
            signal.raise_signal(9)
    """, error_with("ImportError")),
    Case("crash", "module_level_exit", """
        raise SystemExit(3)
        def t():
            return 1
    """, error_with("could not be loaded", "SystemExit")),
]
