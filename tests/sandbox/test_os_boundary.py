"""Assume the language barrier is broken: unrestricted Python inside the OS boundary, and what still fails.

Every test here runs tool code with ``SandboxConfig(language_barrier=False)``: plain ``compile`` and the
real builtins, so ``import os`` works. What stops each attack is the OS boundary alone: namespaces, the
read-only file system, uid 65534, the seccomp filters, rlimits and one process per episode. Run just
this suite with ``python -m pytest tests/sandbox/test_os_boundary.py``. Without bubblewrap or libseccomp
it is skipped with the missing layers named, unless ``FTRL_REQUIRE_OS_SANDBOX=1`` (CI) makes it fail.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftrl_gym.errors import SandboxError
from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall, boundary

SECRET = "FTRL_TEST_SECRET_TOKEN"


@pytest.fixture(scope="module")
def unrestricted() -> Iterator[Sandbox]:
    """A sandbox whose tool code is plain Python: only the OS layers stand between it and the host."""
    os.environ[SECRET] = "hunter2"  # the host's environment holds a secret the tools must not see
    try:
        box = Sandbox(SandboxConfig(timeout_s=10, memory_mb=256, language_barrier=False))
    finally:
        del os.environ[SECRET]
    missing = [name for name, held in box.layers.items() if not held]
    if missing:
        box.close()
        if boundary.required(False):
            pytest.fail(f"OS layers missing: {', '.join(missing)}")
        pytest.skip(f"this host lacks OS layers: {', '.join(missing)} (apt-get install bubblewrap libseccomp2)")
    with box:
        yield box


def run(box: Sandbox, body: str, **arguments: Any) -> Any:
    """Run ``body`` (the inside of ``def attack(...)``, plain Python) in a fresh episode; its JSON value."""
    source = "import os, sys, json\n\ndef attack(**kw):\n" + "".join(f"    {line}\n" for line in body.splitlines())
    with box.open_session({"attack": source}) as session:
        [result] = session.call([ToolCall("attack", arguments)])
    assert result.ok, result.error
    return json.loads(result.text) if result.text[:1] in "[{" else result.value


def outcome(expression: str) -> str:
    """Tool code that evaluates ``expression`` and returns ``"ok: ..."`` or the exception it raised."""
    return (f"try:\n    value = {expression}\n    return 'ok: ' + repr(value)[:200]\n"
            "except BaseException as exc:\n    return type(exc).__name__ + ': ' + str(exc)")


def test_runs_as_an_unprivileged_user_in_its_own_namespaces(unrestricted: Sandbox) -> None:
    seen = run(unrestricted, "return {'uid': os.getuid(), 'gid': os.getgid(), 'pid': os.getpid(), "
                             "'groups': os.getgroups(), 'env': dict(os.environ), 'cwd': os.getcwd(), "
                             "'root': sorted(os.listdir('/')), 'host': os.uname().nodename}")
    assert (seen["uid"], seen["gid"], seen["groups"]) == (65534, 65534, [])
    assert seen["pid"] < 100, "numbered inside its own PID namespace"
    assert SECRET not in seen["env"] and not any("hunter2" in v for v in seen["env"].values())
    assert seen["cwd"] == "/tmp" and seen["host"] == "sandbox"
    assert "proc" not in seen["root"] and "home" not in seen["root"] and "etc" not in seen["root"]


def test_os_system_and_subprocess_start_nothing(unrestricted: Sandbox, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    status = run(unrestricted, f"return os.system('touch {marker}; touch /tmp/pwned')")
    assert status != 0 and not marker.exists()
    assert run(unrestricted, outcome("__import__('subprocess').run(['/bin/true']).returncode")).startswith(
        "PermissionError")
    assert run(unrestricted, outcome("os.fork()")).startswith("PermissionError")
    assert run(unrestricted, outcome("os.execv('/bin/sh', ['sh', '-c', 'true'])")).startswith("PermissionError")
    assert run(unrestricted, outcome("__import__('threading').Thread(target=print).start()")).startswith(
        "RuntimeError: can't start new thread")


def test_host_files_are_out_of_sight_and_nothing_outside_tmp_is_writable(unrestricted: Sandbox,
                                                                          tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host data")
    assert run(unrestricted, outcome(f"open({str(secret)!r}).read()")).startswith("FileNotFoundError")
    assert run(unrestricted, outcome("open('/etc/passwd').read()")).startswith("FileNotFoundError")
    for path in ("/usr/evil", "/opt/ftrl-sandbox/ftrl_gym/sandbox/evil.py", "/opt/ftrl-sandbox/mpmath/evil.py",
                 "/evil"):
        assert run(unrestricted, outcome(f"open({path!r}, 'w')")).startswith(("OSError", "PermissionError")), path
    assert run(unrestricted, outcome("os.unlink('/usr/bin/env')")).startswith(("OSError", "PermissionError"))
    written = run(unrestricted, outcome("os.write(os.open('/tmp/x', os.O_WRONLY | os.O_CREAT), b'a' * 10)"))
    assert written.startswith("OSError: [Errno 27] File too large"), written


def test_host_processes_and_their_environment_are_out_of_reach(unrestricted: Sandbox) -> None:
    host = os.getpid()
    assert run(unrestricted, outcome(f"open('/proc/{host}/environ').read()")).startswith("FileNotFoundError")
    assert run(unrestricted, outcome("open('/proc/1/environ').read()")).startswith("FileNotFoundError")
    assert run(unrestricted, outcome(f"os.kill({host}, 9)")).startswith("PermissionError")
    assert run(unrestricted, outcome("os.kill(1, 9)")).startswith("PermissionError")
    assert run(unrestricted, outcome("os.kill(os.getppid(), 9)")).startswith("PermissionError")
    ptrace = ("__import__('ctypes').CDLL(None, use_errno=True).ptrace(16, 1, 0, 0), "
              "__import__('ctypes').get_errno()")
    assert run(unrestricted, outcome(ptrace)) == "ok: (-1, 1)"  # PTRACE_ATTACH to the zygote: EPERM
    unshare = "__import__('ctypes').CDLL(None, use_errno=True).unshare(0x10000000), __import__('ctypes').get_errno()"
    assert run(unrestricted, outcome(unshare)) == "ok: (-1, 1)"  # a new user namespace: EPERM
    assert os.getpid() == host  # still here


def test_no_socket_reaches_a_server_on_the_host_loopback(unrestricted: Sandbox) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        attempt = outcome(f"__import__('socket').create_connection(('127.0.0.1', {port}), timeout=1)")
        assert run(unrestricted, attempt).startswith("PermissionError")
        pair = outcome("__import__('socket').socketpair()")
        assert run(unrestricted, pair).startswith("PermissionError")
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_memory_is_capped(unrestricted: Sandbox) -> None:
    assert run(unrestricted, outcome("len(bytearray(512 * 1024 * 1024))")).startswith("MemoryError")


def test_nothing_a_tool_starts_outlives_close(unrestricted: Sandbox) -> None:
    attempts = ("import threading, time\nstarted = []\nfor how in ('fork', 'thread', 'spawn'):\n"
                "    try:\n        if how == 'fork':\n            started.append(os.fork())\n"
                "        elif how == 'thread':\n            threading.Thread(target=time.sleep, args=(60,)).start()\n"
                "            started.append('thread')\n"
                "        else:\n            started.append(os.posix_spawn('/bin/sleep', ['sleep', '60'], {}))\n"
                "    except BaseException as exc:\n        started.append(type(exc).__name__)\n"
                "return started")
    source = "import os\n\ndef attack():\n" + "".join(f"    {line}\n" for line in attempts.splitlines())
    session = unrestricted.open_session({"attack": source})
    [result] = session.call([ToolCall("attack", {})])
    assert json.loads(result.text) == ["PermissionError", "RuntimeError", "PermissionError"]
    pid = session.pid
    assert pid is not None
    session.close()
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{pid}")


POLLUTE = """import random, decimal, gc, collections.abc, sys, json, copyreg, mpmath
random.seed(666)
mpmath.mp.dps = 3
decimal.DefaultContext.prec = 3
decimal.getcontext().prec = 3
collections.abc.Mapping.register(list)
json.dumps = lambda *a, **k: 'hijacked'
sys.modules['math'] = None
class Haunt:
    def __del__(self):
        json.loads = None
haunt = Haunt()
def leak_forever():
    try:
        yield 1
    finally:
        random.seed(0)
keep = leak_forever()
next(keep)
def attack(**kw):
    return 'polluted'
"""

FINGERPRINT = """import random, decimal, collections.abc, json, math, sys, mpmath
def attack(**kw):
    return json.dumps({"seeded_666": random.getstate() == random.Random(666).getstate(), "prec": decimal.getcontext().prec,
                       "mpmath_dps": mpmath.mp.dps,
                       "default_prec": decimal.DefaultContext.prec,
                       "list_is_mapping": isinstance([], collections.abc.Mapping),
                       "math": math.sqrt(2), "modules": len(sys.modules), "loads": json.loads('[1]')})
"""


def _fingerprint(box: Sandbox) -> str:
    with box.open_session({"attack": FINGERPRINT}) as session:
        [result] = session.call([ToolCall("attack", {})])
    assert result.ok, result.error
    return result.text


def test_an_episode_cannot_reach_the_next_one_even_unrestricted(unrestricted: Sandbox) -> None:
    clean = _fingerprint(unrestricted)
    with unrestricted.open_session({"attack": POLLUTE}) as polluter:
        assert polluter.call([ToolCall("attack", {})])[0].text == "polluted"
    assert _fingerprint(unrestricted) == clean
    assert json.loads(clean) == {"seeded_666": False, "prec": 28, "mpmath_dps": 15, "default_prec": 28,
                                 "list_is_mapping": False,
                                 "math": 2 ** 0.5, "modules": json.loads(clean)["modules"], "loads": [1]}


def test_the_zygote_is_untouched_by_a_hostile_episode(unrestricted: Sandbox) -> None:
    zygote = unrestricted.zygote_pid
    hostile = outcome("[os.kill(pid, signal.SIGKILL) for pid in range(1, 200) if pid != os.getpid()]")
    assert run(unrestricted, "import signal\n" + hostile).startswith("PermissionError")
    assert unrestricted.zygote_pid == zygote and zygote is not None and os.path.exists(f"/proc/{zygote}")


def test_missing_bubblewrap_is_named_once_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boundary, "bwrap_path", lambda: None)
    monkeypatch.delenv(boundary.REQUIRE_ENV, raising=False)
    monkeypatch.setattr(boundary, "_warned", set())
    with pytest.raises(SandboxError, match="OS boundary is required but unavailable: bubblewrap"):
        Sandbox(SandboxConfig(timeout_s=5, require_os_boundary=True))
    monkeypatch.setenv(boundary.REQUIRE_ENV, "1")
    with pytest.raises(SandboxError, match="apt-get install bubblewrap"):
        Sandbox(SandboxConfig(timeout_s=5))
    monkeypatch.delenv(boundary.REQUIRE_ENV)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Sandbox(SandboxConfig(timeout_s=5)) as box, Sandbox(SandboxConfig(timeout_s=5)):
            assert not box.layers["namespaces"] and not box.layers["read-only file system"]
            with box.open_session({"ok": "def ok():\n    return 'ok'\n"}) as session:
                assert session.call([ToolCall("ok", {})])[0].text == "ok"
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, "said once per process"
    assert "without these OS layers: namespaces, read-only file system" in messages[0]
    assert "bubblewrap (bwrap) is not installed" in messages[0]
