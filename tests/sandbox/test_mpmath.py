"""The sandbox's ``mpmath``: mpmath's own numbers and text, a precision per session, nothing else."""

from __future__ import annotations

import mpmath
import pytest

from ftrl_gym.sandbox import Sandbox, ToolCall
from ftrl_gym.sandbox.mpmath_proxy import MPMATH_NAMES, session_module

SOURCE = """import mpmath
def log_ratio(value, base, precision):
    mpmath.mp.dps = precision
    return {"result": repr(mpmath.log(value) / mpmath.log(base))}
def dps():
    return mpmath.mp.dps
def arithmetic():
    x = mpmath.mpf("1.5")
    return [repr(x * 2 + 1), repr(1 - x), repr(x ** 2), repr(-x), repr(abs(-x)), x < 2, x == 1.5, 2 > x,
            float(x), int(x * 3), str(mpmath.log(-1)), repr(mpmath.log(8, 2))]
"""


def _call(session, name: str, **arguments):
    [result] = session.call([ToolCall(name, arguments)])
    assert result.ok, result.error
    return result.value if result.value is not None else result.text


def test_log_ratios_are_mpmaths_own_at_the_sessions_precision(sandbox: Sandbox) -> None:
    with sandbox.open_session({"log_ratio": SOURCE}) as session:
        for value, base, precision in ((8, 2, 10), (10, 3, 30), (2.5, 10, 4), (-8, 2, 10), (1000, 10, 50)):
            context = mpmath.MPContext()
            context.dps = precision
            expected = repr(context.log(value) / context.log(base))
            assert _call(session, "log_ratio", value=value, base=base, precision=precision) == {"result": expected}
    assert _call_once(sandbox, "log_ratio", value=8, base=2, precision=10) == {"result": "mpf('3.000000000029')"}


def _call_once(sandbox: Sandbox, name: str, **arguments):
    with sandbox.open_session({name: SOURCE}) as session:
        return _call(session, name, **arguments)


def test_precision_belongs_to_the_session_not_the_process(sandbox: Sandbox) -> None:
    host_dps = mpmath.mp.dps
    with sandbox.open_session({"log_ratio": SOURCE, "dps": SOURCE}) as first:
        assert _call(first, "dps") == 15
        _call(first, "log_ratio", value=8, base=2, precision=60)
        assert _call(first, "dps") == 60
        with sandbox.open_session({"dps": SOURCE}) as second:
            assert _call(second, "dps") == 15
    assert mpmath.mp.dps == host_dps


def test_numbers_compute_and_compare_as_mpmaths(sandbox: Sandbox) -> None:
    assert _call_once(sandbox, "arithmetic") == [
        "mpf('4.0')", "mpf('-0.5')", "mpf('2.25')", "mpf('-1.5')", "mpf('1.5')", True, True, True, 1.5, 4,
        "(0.0 + 3.14159265358979j)", "mpf('3.0')",
    ]


@pytest.mark.parametrize(("body", "message"), [
    ("mpmath.mp.dps = '40'", "mpmath.mp.dps must be a number, not 'str'"),
    ("mpmath.log([2])", "mpmath in the sandbox takes int, float, str or mpmath numbers, not 'list'"),
    ("mpmath.mp.prec = 100", "'MpContext' object has no attribute 'prec'"),
    ("mpmath.mpf(1) / 0", "ZeroDivisionError"),
    ("mpmath.mpf('one')", "ValueError"),
    ("mpmath.pi", "module 'mpmath' has no attribute 'pi' (or it is not available in the sandbox)"),
])
def test_misuse_is_an_error_result_naming_the_problem(sandbox: Sandbox, body: str, message: str) -> None:
    source = f"import mpmath\ndef t():\n    return {body}\n" if "=" not in body.split("(")[0] else (
        f"import mpmath\ndef t():\n    {body}\n")
    with sandbox.open_session({"t": source}) as session:
        [result] = session.call([ToolCall("t", {})])
    assert not result.ok and message in (result.error or ""), result


def test_the_import_error_lists_mpmath_among_the_allowed_modules(sandbox: Sandbox) -> None:
    with sandbox.open_session({"t": "import numpy\ndef t():\n    return 1\n"}) as session:
        [result] = session.call([ToolCall("t", {})])
    assert "module 'numpy' is not available in the sandbox" in (result.error or "")
    assert "mpmath (mp.dps, log, mpf)" in (result.error or "")


def test_a_session_holds_exactly_the_documented_names() -> None:
    assert set(session_module()) == set(MPMATH_NAMES) == {"mp", "log", "mpf"}
