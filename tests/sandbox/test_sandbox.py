"""Behaviour of the sandbox on real worker processes: real-world tool code, state, errors, lifecycle."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import statistics
import threading
import time
from pathlib import Path

import pytest
from sandbox_limits import MEMORY_MB, TIMEOUT_S

from ftrl_gym.errors import EpisodeStateLostError, SandboxError
from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall, ToolResult

REAL_WORLD = '''
import json
import math
from copy import deepcopy
from collections import Counter, defaultdict, namedtuple, deque
from datetime import date, datetime, timedelta
import re, itertools, functools, string, statistics, decimal, fractions
from typing import Any, Dict, List, Optional

def real_world(text: str, limit: Optional[int] = None) -> Dict[str, Any]:
    from collections import OrderedDict
    words = text.split()
    counts = defaultdict(int)
    for w in words:
        counts[w] += 1
    Point = namedtuple("Point", ["x", "y"])
    p = Point(3, 4)
    squares = [n * n for n in range(5) if n % 2 == 0]
    try:
        ratio = 1 / 0
    except ZeroDivisionError as exc:
        ratio = str(exc)
    return {
        "json": json.loads(json.dumps({"a": [1, 2]})),
        "hyp": math.hypot(p.x, p.y),
        "deep": deepcopy({"k": [1]}),
        "top": Counter(words).most_common(1)[0],
        "counts": dict(counts),
        "next_day": (date(2024, 2, 28) + timedelta(days=1)).isoformat(),
        "digits": re.findall(r"\\d+", "a1b22c333"),
        "pairs": len(list(itertools.combinations("abcd", 2))),
        "product": functools.reduce(lambda a, b: a * b, [1, 2, 3, 4]),
        "letters": string.ascii_lowercase[:limit or 3],
        "median": statistics.median([5, 1, 3]),
        "money": str(decimal.Decimal("0.10") + decimal.Decimal("0.20")),
        "third": str(fractions.Fraction(1, 3) + fractions.Fraction(1, 6)),
        "squares": squares,
        "ordered": list(OrderedDict([("b", 1), ("a", 2)])),
        "window": list(deque([1, 2, 3], maxlen=2)),
        "fmt": "{0} has {n:>3} items".format("cart", n=7),
        "fstr": f"{p.x:03d}|{3.14159:.2f}",
        "ratio": ratio,
        "sorted": sorted({"b": 2, "a": 1}.items(), key=lambda kv: kv[1]),
        "moved": p._replace(x=0)._asdict(),
        "parsed": datetime.strptime("2024-01-02 10:30", "%Y-%m-%d %H:%M").strftime("%A %d %B, %H:%M"),
    }
'''

EXPECTED = {
    "json": {"a": [1, 2]}, "hyp": 5.0, "deep": {"k": [1]}, "top": ["b", 2], "counts": {"a": 1, "b": 2},
    "next_day": "2024-02-29", "digits": ["1", "22", "333"], "pairs": 6, "product": 24, "letters": "ab",
    "median": 3, "money": "0.30", "third": "1/2", "squares": [0, 4, 16], "ordered": ["b", "a"],
    "window": [2, 3], "fmt": "cart has   7 items", "fstr": "003|3.14", "ratio": "division by zero",
    "sorted": [["a", 1], ["b", 2]], "moved": {"x": 0, "y": 4},
    "parsed": "Tuesday 02 January, 10:30",
}

BANK = '''
class Ledger:
    def __init__(self, owner):
        self.owner = owner
        self.entries = 0

    def __str__(self):
        return f"Ledger({self.owner}, {self.entries})"

def transfer(src: str, dst: str, amount: float, data=None):
    users = data["users"]
    if users[src]["balance"] < amount:
        raise ValueError(f"insufficient funds: {users[src]['balance']}")
    users[src]["balance"] -= amount
    users[dst]["balance"] += amount
    data["transfers"] += 1
    ledger = Ledger(src)
    ledger.entries += 2
    ledger.entries *= 3
    return {"src": users[src]["balance"], "dst": users[dst]["balance"], "ledger": str(ledger)}

def balance(user: str, data=None):
    return data["users"][user]["balance"]
'''

BANK_STATE = {"users": {"ann": {"balance": 100.0}, "bob": {"balance": 5.0}}, "transfers": 0}


def call(session, name: str, **arguments) -> ToolResult:
    [result] = session.call([ToolCall(name, arguments)])
    return result


def process_gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def test_real_world_code_runs_unchanged(sandbox: Sandbox) -> None:
    with sandbox.open_session({"real_world": REAL_WORLD}) as session:
        result = call(session, "real_world", text="a b b", limit=2)
    assert result.ok, result.error
    assert result.value == EXPECTED
    assert result.text == json.dumps(result.value)


def test_result_text_follows_the_reference(sandbox: Sandbox) -> None:
    code = "def r(kind):\n    return {'d': {'a': 1, 'b': [1, 2]}, 't': (1, 'x'), 'n': None, 'f': 0.5, 's': 'hi'}[kind]\n"
    with sandbox.open_session({"r": code}) as session:
        results = {k: call(session, "r", kind=k) for k in "dtnfs"}
    assert results["d"].text == '{"a": 1, "b": [1, 2]}' and results["d"].value == {"a": 1, "b": [1, 2]}
    assert results["t"].text == "(1, 'x')" and results["t"].value == "(1, 'x')"
    assert results["n"].text == "None" and results["n"].value is None
    assert results["f"].text == "0.5" and results["f"].value == 0.5
    assert results["s"].text == "hi" and results["s"].value == "hi"


def test_stateful_mutation_persists_within_a_session_only(sandbox: Sandbox) -> None:
    with sandbox.open_session({"transfer": BANK, "balance": BANK}, state=BANK_STATE) as session:
        first = call(session, "transfer", src="ann", dst="bob", amount=30)
        assert first.value == {"src": 70.0, "dst": 35.0, "ledger": "Ledger(ann, 6)"}
        assert call(session, "balance", user="ann").value == 70.0
        broke = call(session, "transfer", src="bob", dst="ann", amount=1000)
        assert broke.error == "error: tool 'transfer' raised ValueError: insufficient funds: 35.0"
        assert session.get_state()["transfers"] == 1
    with sandbox.open_session({"balance": BANK}, state=BANK_STATE) as fresh:
        assert call(fresh, "balance", user="ann").value == 100.0
    assert BANK_STATE["users"]["ann"]["balance"] == 100.0


def test_state_is_copied_at_open_and_get_state_returns_a_copy(sandbox: Sandbox) -> None:
    state = json.loads(json.dumps(BANK_STATE))
    with sandbox.open_session({"balance": BANK}, state=state) as session:
        state["users"]["ann"]["balance"] = -1
        before_any_call = session.get_state()
        assert before_any_call["users"]["ann"]["balance"] == 100.0
        assert call(session, "balance", user="ann").value == 100.0
        copy = session.get_state()
        copy["users"]["ann"]["balance"] = 0
        assert session.get_state()["users"]["ann"]["balance"] == 100.0


def test_large_state_is_not_copied_per_call(sandbox: Sandbox) -> None:
    rows = {f"user{i:06d}": {"name": "x" * 40, "balance": i} for i in range(60_000)}
    state = {"users": rows}
    assert len(json.dumps(state)) > 5_000_000
    code = "def get(user, data=None):\n    data['users'][user]['balance'] += 1\n    return data['users'][user]['balance']\n"
    with sandbox.open_session({"get": code}, state=state) as session:
        assert call(session, "get", user="user000007").value == 8
        times = []
        for _ in range(30):
            start = time.perf_counter()
            call(session, "get", user="user000007")
            times.append(time.perf_counter() - start)
        assert statistics.median(times) < 0.005, f"median {statistics.median(times) * 1e3:.2f} ms per call"
        assert session.get_state()["users"]["user000007"]["balance"] == 38


def test_module_globals_are_fresh_per_session(sandbox: Sandbox) -> None:
    code = "seen = []\ndef remember(x):\n    seen.append(x)\n    return len(seen)\n"
    with sandbox.open_session({"remember": code}) as session:
        assert [call(session, "remember", x=i).value for i in range(3)] == [1, 2, 3]
    with sandbox.open_session({"remember": code}) as session:
        assert call(session, "remember", x=0).value == 1


def test_a_tool_cannot_rebind_a_sibling(sandbox: Sandbox) -> None:
    codes = {
        "evil": "def evil():\n    global good\n    good = lambda: 'pwned'\n    return 'done'\n",
        "good": "def good():\n    return 'fine'\n",
    }
    with sandbox.open_session(codes) as session:
        assert call(session, "evil").text == "done"
        assert call(session, "good").text == "fine"
    with sandbox.open_session(codes) as session:
        assert call(session, "good").text == "fine"


def test_random_is_per_session_and_seedable(sandbox: Sandbox) -> None:
    draw = "import random\ndef draw():\n    return [random.randint(0, 10**6) for _ in range(3)]\n"
    reseed = "import random\ndef reseed():\n    random.seed(0)\n    return random.random()\n"
    host = random.getstate()
    with sandbox.open_session({"draw": draw}, seed=7) as a, \
            sandbox.open_session({"draw": draw, "reseed": reseed}, seed=7) as b:
        first = call(a, "draw").value
        call(b, "reseed")
        assert call(a, "draw").value != first
        reference = random.Random(7)
        assert first == [reference.randint(0, 10**6) for _ in range(3)]
    with sandbox.open_session({"draw": draw}, seed=7) as c:
        assert call(c, "draw").value == first
    assert random.getstate() == host


def test_decimal_context_does_not_leak_between_sessions(sandbox: Sandbox) -> None:
    code = ("import decimal\ndef third(prec=None):\n    if prec:\n"
            "        decimal.setcontext(decimal.Context(prec=prec))\n"
            "    return str(decimal.Decimal(1) / decimal.Decimal(3))\n")
    patch = "import decimal\ndef patch():\n    decimal.getcontext().prec = 2\n    return 'patched'\n"
    with sandbox.open_session({"third": code, "patch": patch}) as a:
        assert call(a, "third", prec=3).text == "0.333"
        assert call(a, "patch").text == "patched"
        assert call(a, "third").text == "0.33"
    with sandbox.open_session({"third": code}) as b:
        assert call(b, "third").text == "0." + "3" * 28


def test_error_lines(sandbox: Sandbox) -> None:
    codes = {"add": "def add(a, b):\n    return a + b\n", "broken": "def broken(:\n    pass\n",
             "spin": "def spin():\n    while True:\n        pass\n", "empty": "x = 1\n"}
    with sandbox.open_session(codes) as session:
        results = session.call([ToolCall("nope", {}), ToolCall("add", {"a": 1}),
                                ToolCall("add", {"a": 1, "c": 2}), ToolCall("add", {"a": 1, "b": "x"}),
                                ToolCall("broken", {}), ToolCall("empty", {}), ToolCall("spin", {}),
                                ToolCall("add", {"a": 1, "b": 2})])
    errors = [r.error for r in results]
    assert errors[0] == "error: unknown tool 'nope'; available: add, broken, empty, spin"
    assert errors[1] == "error: bad arguments for tool 'add': missing 1 required positional argument: 'b'"
    assert errors[2] == "error: bad arguments for tool 'add': got an unexpected keyword argument 'c'"
    assert errors[3] == "error: tool 'add' raised TypeError: unsupported operand type(s) for +: 'int' and 'str'"
    assert errors[4].startswith("error: tool 'broken' could not be compiled: Line 1: SyntaxError")
    assert errors[5] == "error: tool 'empty' could not be loaded: its code does not define a function named 'empty'"
    assert errors[6] == f"error: tool 'spin' timed out after {TIMEOUT_S:g} s"
    assert results[7].ok and results[7].value == 3
    assert all(not r.ok and r.text == r.error and "\n" not in r.text for r in results[:7])


def test_unusable_arguments_are_errors_not_exceptions(sandbox: Sandbox) -> None:
    with sandbox.open_session({"f": "def f(x=None):\n    return x\n"}) as session:
        results = session.call([ToolCall("f", {"x": {1, 2}}), ToolCall("f", ["x"]),  # type: ignore[arg-type]
                                ToolCall("f", {"x": 1})])
    assert results[0].error.startswith("error: bad arguments for tool 'f': arguments are not JSON-serialisable")
    assert results[1].error == "error: bad arguments for tool 'f': arguments must be a JSON object, got list"
    assert results[2].value == 1


def test_memory_limit_is_reported(sandbox: Sandbox) -> None:
    with sandbox.open_session({"big": "def big():\n    return len(bytearray(2 * 1024 ** 3))\n"}) as session:
        assert call(session, "big").error == f"error: tool 'big' exceeded the memory limit ({MEMORY_MB} MB)"


def test_output_is_truncated_with_a_marker(sandbox: Sandbox) -> None:
    with sandbox.open_session({"long": "def long(n):\n    return 'é' * n\n"}) as session:
        short = call(session, "long", n=10)
        cut = call(session, "long", n=100_000)
    assert short.text == "é" * 10
    limit = sandbox.config.output_limit
    assert cut.ok and cut.value is None
    assert cut.text.startswith("é" * 100) and cut.text.endswith(f"...[truncated {200_000 - limit} bytes of tool output]")
    assert len(cut.text.split("\n...[")[0].encode()) <= limit


def test_stateless_batch_survives_a_timeout_in_the_middle(sandbox: Sandbox) -> None:
    codes = {"ok": "def ok(x):\n    return x\n", "spin": "def spin():\n    while True:\n        pass\n"}
    with sandbox.open_session(codes) as session:
        results = session.call([ToolCall("ok", {"x": 1}), ToolCall("spin", {}), ToolCall("ok", {"x": 3})])
        assert [r.ok for r in results] == [True, False, True]
        assert results[2].value == 3 and not session.state_lost


def test_stateful_session_loses_state_when_its_worker_dies(sandbox: Sandbox) -> None:
    codes = {"balance": BANK, "spin": "def spin(data=None):\n    while True:\n        pass\n"}
    stateless = sandbox.open_session({"ok": "def ok():\n    return 'ok'\n"})
    assert call(stateless, "ok").ok
    with sandbox.open_session(codes, state=BANK_STATE) as session:
        assert call(session, "balance", user="ann").value == 100.0
        results = session.call([ToolCall("spin", {}), ToolCall("balance", {"user": "ann"})])
        assert results[0].error == f"error: tool 'spin' timed out after {TIMEOUT_S:g} s"
        assert "episode state was lost" in results[1].error
        assert session.state_lost
        assert "episode state was lost" in call(session, "balance", user="ann").error
        with pytest.raises(EpisodeStateLostError):
            session.get_state()
    assert call(stateless, "ok").text == "ok"
    stateless.close()


def test_externally_killed_episode_process_is_replaced(sandbox: Sandbox) -> None:
    with sandbox.open_session({"ok": "def ok():\n    return 'ok'\n"}) as session:
        assert call(session, "ok").ok
        pid = session.pid
        assert pid is not None and pid in sandbox.episode_pids
        os.kill(pid, signal.SIGKILL)
        _wait_until_dead(pid)  # a fixed 50 ms sleep lost the race on a loaded machine
        assert call(session, "ok").text == "ok"
        assert session.pid not in (None, pid)


def _wait_until_dead(pid: int, timeout_s: float = 10.0) -> None:
    """Return once ``pid`` has exited (a zombie or gone); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} was still running {timeout_s} s after SIGKILL")


def test_closed_session_returns_errors(sandbox: Sandbox) -> None:
    session = sandbox.open_session({"ok": "def ok():\n    return 'ok'\n"})
    session.close()
    assert call(session, "ok").error == "error: tool 'ok' was not run: the sandbox session is closed"
    assert session.get_state() is None


def test_two_threads_share_one_worker(sandbox: Sandbox) -> None:
    code = "def echo(tag, i):\n    return f'{tag}-{i}'\n"
    failures: list[str] = []

    def run(tag: str) -> None:
        with sandbox.open_session({"echo": code}) as session:
            for i in range(200):
                text = call(session, "echo", tag=tag, i=i).text
                if text != f"{tag}-{i}":
                    failures.append(text)

    threads = [threading.Thread(target=run, args=(tag,)) for tag in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_timeout_in_one_thread_does_not_disturb_another(sandbox: Sandbox) -> None:
    codes = {"echo": "def echo(i):\n    return i\n", "spin": "def spin():\n    while True:\n        pass\n"}
    seen: list[object] = []
    spun: list[ToolResult] = []

    def steady() -> None:
        with sandbox.open_session(codes) as session:
            seen.extend(call(session, "echo", i=i).value for i in range(300))

    def spinner() -> None:
        with sandbox.open_session(codes) as session:
            spun.append(call(session, "spin"))

    threads = [threading.Thread(target=steady), threading.Thread(target=spinner)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == list(range(300))
    assert "timed out" in (spun[0].error or "")


def test_episode_process_limits_and_namespaces(sandbox: Sandbox) -> None:
    with sandbox.open_session({"ok": "def ok():\n    return 1\n"}) as session:
        call(session, "ok")
        pid = session.pid
        assert pid is not None
        limits = Path(f"/proc/{pid}/limits").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
        assert f"{MEMORY_MB * 1024 * 1024}" in limits.split("Max address space")[1].split("\n")[0]
        assert limits.split("Max file size")[1].split()[:2] == ["0", "0"]
        assert limits.split("Max open files")[1].split()[:2] == ["16", "16"]
        assert limits.split("Max cpu time")[1].split()[0] != "unlimited"
        assert limits.split("Max core file size")[1].split()[:2] == ["0", "0"]
        assert sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2", "3"]
        layers = sandbox.layers
        if layers["seccomp"]:
            assert status.split("Seccomp:")[1].split()[0] == "2"  # a filter is loaded
            assert status.split("NoNewPrivs:")[1].split()[0] == "1"
        if layers["unprivileged uid"]:
            assert status.split("Uid:")[1].split()[:3] != ["0", "0", "0"]
        if layers["namespaces"]:
            for kind in ("pid", "mnt", "net", "ipc", "uts"):
                assert os.readlink(f"/proc/{pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}"), kind
            assert status.split("NSpid:")[1].split()[0] == str(pid)  # host pid first, then its own
            assert len(status.split("NSpid:")[1].split("\n")[0].split()) == 2


def test_close_leaves_no_process_behind() -> None:
    box = Sandbox(SandboxConfig(timeout_s=TIMEOUT_S))
    sessions = [box.open_session({"ok": "def ok():\n    return 'ok'\n"}) for _ in range(4)]
    assert all(call(s, "ok").ok for s in sessions)
    pids = box.episode_pids + [box.zygote_pid]
    assert len(set(pids)) == 5
    box.close()
    box.close()
    assert all(process_gone(pid) for pid in pids)
    with pytest.raises(SandboxError):
        box.open_session({})
    with pytest.raises(SandboxError, match="closed"):
        sessions[0].call([ToolCall("ok", {})])
    for session in sessions:
        session.close()
    assert box.episode_pids == [] and box.zygote_pid is None


def test_closing_a_session_ends_its_process(sandbox: Sandbox) -> None:
    session = sandbox.open_session({"ok": "def ok():\n    return 'ok'\n"})
    assert call(session, "ok").ok
    pid = session.pid
    assert pid is not None
    session.close()
    deadline = time.monotonic() + 5
    while not process_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_gone(pid)


def test_unreferenced_sandbox_is_cleaned_up() -> None:
    box = Sandbox(SandboxConfig(timeout_s=TIMEOUT_S))
    session = box.open_session({"ok": "def ok():\n    return 'ok'\n"})
    assert call(session, "ok").ok
    pids = [box.zygote_pid, session.pid]
    del box, session
    assert all(process_gone(pid) for pid in pids if pid is not None)


def test_a_session_keeps_its_sandbox_alive() -> None:
    session = Sandbox(SandboxConfig(timeout_s=TIMEOUT_S)).open_session({"ok": "def ok():\n    return 'ok'\n"})
    assert call(session, "ok").text == "ok"


def test_sandbox_pickles_as_its_config_and_sessions_refuse() -> None:
    with Sandbox(SandboxConfig(timeout_s=TIMEOUT_S)) as box:
        session = box.open_session({"ok": "def ok():\n    return 'ok'\n"})
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(session)
        clone = pickle.loads(pickle.dumps(box))
        try:
            assert clone.config == box.config and clone.zygote_pid != box.zygote_pid
            assert call(clone.open_session({"ok": "def ok():\n    return 'ok'\n"}), "ok").text == "ok"
        finally:
            clone.close()


def test_worker_that_cannot_start_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.executable", "/nonexistent/python")
    with pytest.raises(SandboxError, match="cannot start a sandbox worker"):
        Sandbox(SandboxConfig(timeout_s=TIMEOUT_S))


def test_invalid_configuration_and_arguments_say_how_to_fix(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="timeout_s must be a positive"):
        SandboxConfig(timeout_s=0)
    with pytest.raises(SandboxError, match="memory_mb must be an int >= 64"):
        SandboxConfig(memory_mb=8)
    with pytest.raises(TypeError, match="codes must map"):
        sandbox.open_session({"f": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="state must be JSON-serialisable"):
        sandbox.open_session({}, state={"s": {1}})


def test_forked_child_gets_its_own_processes_and_leaves_the_parents_alone() -> None:
    with Sandbox(SandboxConfig(timeout_s=TIMEOUT_S)) as box:
        session = box.open_session({"ok": "def ok():\n    return 'ok'\n"})
        assert call(session, "ok").ok
        parent_pids = [box.zygote_pid, session.pid]
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            try:
                text = call(session, "ok").text
                mine = session.pid not in parent_pids
                box.close()
                os.write(write_end, f"{text} {mine} {box.episode_pids == []}".encode())
            finally:
                os._exit(0)
        os.close(write_end)
        os.waitpid(child, 0)
        assert os.read(read_end, 100).decode() == "ok True True"
        assert [box.zygote_pid, session.pid] == parent_pids
        assert not any(process_gone(p) for p in parent_pids if p is not None)
        assert call(session, "ok").text == "ok"


HOST_SCRIPT = """
import sys, threading, time
from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall
made = {}
thread = threading.Thread(target=lambda: made.update(box=Sandbox(SandboxConfig(timeout_s=5))))
thread.start()
thread.join()  # the thread that started the zygote is gone: the sandbox must not go with it
session = made["box"].open_session({"ok": "def ok():\\n    return 'ok'\\n"})
time.sleep(0.3)
print(session.call([ToolCall("ok", {})])[0].text, made["box"].zygote_pid, session.pid, flush=True)
time.sleep(60)
"""


def test_a_sandbox_outlives_the_thread_that_made_it_but_not_the_host() -> None:
    import subprocess
    import sys

    host = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT], stdout=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parents[2]))
    assert host.stdout is not None
    text, zygote, episode = host.stdout.readline().split()
    assert text == "ok"
    host.kill()
    host.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (process_gone(int(zygote)) and process_gone(int(episode))):
        time.sleep(0.02)
    assert process_gone(int(zygote)) and process_gone(int(episode))


def test_tools_are_compiled_once_per_sandbox_by_a_process_that_runs_none() -> None:
    codes = {"add": "def add(a, b):\n    return a + b\n", "bad": "def bad(:\n    pass\n"}
    with Sandbox(SandboxConfig(timeout_s=TIMEOUT_S)) as box:
        for _ in range(3):
            with box.open_session(codes) as session:
                added, broken = session.call([ToolCall("add", {"a": 1, "b": 2}), ToolCall("bad", {})])
                assert added.value == 3
                assert broken.error.startswith("error: tool 'bad' could not be compiled: Line 1: SyntaxError")
        assert len(box.compile_cache) == 2, "each source compiled once, its failure cached too"
        compiler = box.compile_cache.compiler_pid
        assert compiler is not None and compiler not in box.episode_pids
        os.kill(compiler, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not process_gone(compiler) and time.monotonic() < deadline:
            time.sleep(0.01)
        with box.open_session({"mul": "def mul(a, b):\n    return a * b\n"}) as session:
            assert call(session, "mul", a=6, b=7).value == 42
        assert box.compile_cache.compiler_pid not in (None, compiler) and len(box.compile_cache) == 3
