"""Fault injection: workers SIGKILLed mid-call from outside, an exhausted pool, and close() of every kind of env."""

from __future__ import annotations

import gc
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import psutil
import pytest
from gymnasium.error import ResetNeeded
from reliability_helpers import FIXTURE, call_text, descendant_pids, pid_exists, wait_until, zombies

from ftrl_gym.envs import ToolUseEnv
from ftrl_gym.envs.registration import CUSTOM_ID
from ftrl_gym.errors import EpisodeStateLostError
from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall

SPIN = "def spin(data=None):\n    n = 0\n    while n < 10 ** 12:\n        n += 1\n    return n\n"
"""Runs until killed or timed out."""
WORK = "def work(x, data=None):\n    n = 0\n    while n < 20000:\n        n += 1\n    return {'echo': x}\n"
"""A few milliseconds of work, so that a kill at a random moment often lands inside a call."""
ECHO = "def echo(x, data=None):\n    return {'echo': x}\n"
BUMP = "def bump(data):\n    data['n'] += 1\n    return data['n']\n"
KILLED = "crashed the sandbox worker process (killed by signal 9); the worker was replaced"

COUNTER_TASK: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Bump the counter twice."}],
    "tools": [{"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
              for name in ("bump", "spin")],
    "codes": {"bump": BUMP, "spin": SPIN},
    "unsolved_set": {"bump": ["2"]},
    "answer": "2",
    "state": {"n": 0},
}
"""A stateful task: its world state is a counter that only the worker holds."""
BUMP_CALL = call_text([{"name": "bump", "arguments": {}}])
SPIN_CALL = call_text([{"name": "spin", "arguments": {}}])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def kill_mid_call(pid: int, run: Callable[[], Any]) -> Any:
    """Run ``run`` in a thread, SIGKILL ``pid`` once it has burnt CPU inside the call, return the result."""
    base = cpu_seconds(pid)
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(value=run()))
    thread.start()
    assert wait_until(lambda: cpu_seconds(pid) > base + 0.05), "the worker never got busy"
    os.kill(pid, signal.SIGKILL)
    thread.join(15)
    assert not thread.is_alive()
    return out["value"]


def test_sigkill_mid_call_returns_an_error_and_the_next_call_is_served() -> None:
    with Sandbox(SandboxConfig(timeout_s=30)) as sandbox, sandbox.open_session({"spin": SPIN, "echo": ECHO}) as s:
        assert s.call([ToolCall("echo", {"x": 0})])[0].ok
        pid = s.pid
        assert pid is not None
        start = time.monotonic()
        spun, echoed = kill_mid_call(pid, lambda: s.call([ToolCall("spin", {}), ToolCall("echo", {"x": 1})]))
        assert spun.error == f"error: tool 'spin' {KILLED}" and spun.value is None
        assert echoed.ok and echoed.value == {"echo": 1}
        assert time.monotonic() - start < 15, "the death was noticed, not waited out"
        assert s.pid not in (None, pid) and not pid_exists(pid) and not zombies()
        assert s.call([ToolCall("echo", {"x": 2})])[0].value == {"echo": 2}
        assert not s.state_lost


def test_killed_zygote_is_replaced_and_takes_only_its_episodes_state() -> None:
    with Sandbox(SandboxConfig(timeout_s=30)) as sandbox:
        stateless = sandbox.open_session({"echo": ECHO})
        stateful = sandbox.open_session({"bump": BUMP}, state={"n": 0})
        assert stateless.call([ToolCall("echo", {"x": 1})])[0].ok
        assert stateful.call([ToolCall("bump", {})])[0].value == 1
        zygote = sandbox.zygote_pid
        assert zygote is not None
        os.kill(zygote, signal.SIGKILL)
        assert wait_until(lambda: not pid_exists(zygote))
        assert stateless.call([ToolCall("echo", {"x": 2})])[0].value == {"echo": 2}
        [bumped] = stateful.call([ToolCall("bump", {})])
        assert "the episode state was lost" in bumped.error and stateful.state_lost
        assert sandbox.zygote_pid not in (None, zygote) and not zombies()
        stateless.close()
        stateful.close()


def test_prefetched_and_spare_processes_killed_from_outside_are_replaced() -> None:
    with Sandbox(SandboxConfig(timeout_s=30)) as sandbox:
        before = descendant_pids()
        with sandbox.open_session({"echo": ECHO}) as first:
            assert first.call([ToolCall("echo", {"x": 1})])[0].ok
            waiting = [p for p in descendant_pids() - before if p != first.pid and not psutil.Process(p).children()]
            assert waiting, "an episode process is forked ahead of time"
            for pid in waiting:
                os.kill(pid, signal.SIGKILL)
            assert wait_until(lambda: not any(pid_exists(p) for p in waiting))
            with sandbox.open_session({"echo": ECHO}) as second:
                assert second.call([ToolCall("echo", {"x": 2})])[0].value == {"echo": 2}
                assert second.pid not in waiting


def test_sigkill_mid_call_truncates_a_stateful_episode_with_state_lost() -> None:
    with Sandbox(SandboxConfig(timeout_s=30)) as sandbox:
        env = ToolUseEnv([COUNTER_TASK], sandbox=sandbox)
        env.reset(seed=0)
        assert env.step(BUMP_CALL)[0] == "<tool_response>\n1\n</tool_response>"
        assert env.get_state() == {"n": 1}
        [pid] = sandbox.episode_pids
        obs, reward, terminated, truncated, info = kill_mid_call(pid, lambda: env.step(SPIN_CALL))
        assert (reward, terminated, truncated, info["truncation_reason"]) == (0.0, False, True, "state_lost")
        assert KILLED in obs
        with pytest.raises(EpisodeStateLostError):
            env.get_state()
        with pytest.raises(ResetNeeded):
            env.step(BUMP_CALL)
        env.reset()
        assert env.step(BUMP_CALL)[0] == "<tool_response>\n1\n</tool_response>"
        env.close()


def test_worker_killed_between_turns_never_restarts_the_state_silently() -> None:
    with Sandbox(SandboxConfig(timeout_s=30)) as sandbox:
        env = ToolUseEnv([COUNTER_TASK], sandbox=sandbox)
        env.reset(seed=0)
        env.step(BUMP_CALL)
        [pid] = sandbox.episode_pids
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not pid_exists(pid))
        obs, _reward, _terminated, truncated, info = env.step(BUMP_CALL)
        assert (truncated, info["truncation_reason"]) == (True, "state_lost")
        assert "the episode state was lost" in obs and "\n1\n" not in obs and "\n2\n" not in obs
        env.close()


def test_worker_killed_between_turns_leaves_a_stateless_episode_intact() -> None:
    with Sandbox(SandboxConfig(timeout_s=30)) as sandbox:
        env = ToolUseEnv(str(FIXTURE), sandbox=sandbox)
        env.reset(options={"task_index": 0})
        env.step(call_text([{"name": "get_weather", "arguments": {"city": "Oslo"}}]))
        [pid] = sandbox.episode_pids
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not pid_exists(pid))
        obs, reward, terminated, truncated, info = env.step(
            call_text([{"name": "get_weather", "arguments": {"city": "Paris"}}]))
        assert (terminated, truncated, info["tool_results"][0]["ok"]) == (False, False, True)
        assert "Sunny" in obs and reward == 1.0
        env.close()


def test_random_kills_never_give_a_wrong_result() -> None:
    rng = random.Random(7)
    kills = 0
    with Sandbox(SandboxConfig(timeout_s=10)) as sandbox:
        stateless = sandbox.open_session({"work": WORK})
        stateful = sandbox.open_session({"bump": BUMP}, state={"n": 0})
        count, lost = 0, False
        for x in range(300):
            timer = None
            if rng.random() < 0.1:
                victim = rng.choice([s.pid for s in (stateless, stateful) if s.pid is not None] or [-1])
                timer = threading.Timer(rng.uniform(0.0, 0.01), _kill_quietly, [victim])
                timer.start()
                kills += 1
            [worked] = stateless.call([ToolCall("work", {"x": x})])
            assert (worked.ok and worked.value == {"echo": x}) or KILLED in (worked.error or ""), worked
            [bumped] = stateful.call([ToolCall("bump", {})])
            if bumped.ok:
                assert not lost, "a state that died came back"
                count += 1
                assert bumped.value == count
            else:
                lost = True
                assert KILLED in bumped.error or "the episode state was lost" in bumped.error
            if timer is not None:
                timer.join()
        assert kills >= 10 and lost
        assert len(sandbox.episode_pids) <= 2 and not zombies()


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_exhausted_pool_serves_every_call_and_recovers() -> None:
    # 5 s, not less: with 16 calls at once an echo has waited 3.6 s for a loaded 2-core CPU
    with Sandbox(SandboxConfig(timeout_s=5.0)) as sandbox:
        sessions = [sandbox.open_session({"echo": ECHO, "spin": SPIN}) for _ in range(200)]

        def work(i: int) -> Any:
            call = ToolCall("spin", {}) if i % 25 == 0 else ToolCall("echo", {"x": i})
            return sessions[i].call([call])[0]

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(work, range(200)))
        for i, result in enumerate(results):
            if i % 25 == 0:
                assert result.error == "error: tool 'spin' timed out after 5 s"
            else:
                assert result.ok and result.value == {"echo": i}
        assert len(set(sandbox.episode_pids)) == 192, "every episode has a process of its own (a timeout ends it)"
        start = time.monotonic()
        with sandbox.open_session({"echo": ECHO}) as fresh:
            assert fresh.call([ToolCall("echo", {"x": "after"})])[0].value == {"echo": "after"}
        assert time.monotonic() - start < 2.0
        for session in sessions:
            session.close()
        assert wait_until(lambda: not zombies()), "the zygote reaps what it killed"


def assert_no_new_process(before: set[int]) -> None:
    """Every process started since ``before`` is gone (and reaped)."""
    assert wait_until(lambda: descendant_pids() <= before), descendant_pids() - before
    assert not zombies()


def test_env_close_leaves_no_process_behind() -> None:
    before = descendant_pids()
    env = gym.make(CUSTOM_ID, tasks=str(FIXTURE))
    env.reset(options={"task_index": 0})
    env.step(call_text([{"name": "get_weather", "arguments": {"city": "Oslo"}}]))
    assert len(descendant_pids() - before) >= 3  # the zygote, the episode's process, one forked ahead
    env.close()
    assert_no_new_process(before)


def test_unclosed_env_is_cleaned_up_when_collected() -> None:
    before = descendant_pids()
    env = ToolUseEnv(str(FIXTURE))
    env.reset(options={"task_index": 0})
    env.step(call_text([{"name": "get_weather", "arguments": {"city": "Oslo"}}]))
    started = descendant_pids() - before
    assert started
    del env
    gc.collect()
    assert wait_until(lambda: not any(pid_exists(p) for p in started))
    assert_no_new_process(before)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_env_close_leaves_no_process_behind(mode: str) -> None:
    before = descendant_pids()
    envs = gym.make_vec(CUSTOM_ID, num_envs=3, vectorization_mode=mode, tasks=str(FIXTURE))
    envs.reset(seed=1, options={"task_index": 0})
    weather = call_text([{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    envs.step((weather,) * 3)
    started = descendant_pids() - before
    episode_processes = [p for p in started if not psutil.Process(p).children()]
    assert len(episode_processes) >= 3  # each env's episode, and the ones forked ahead
    for pid in episode_processes:
        os.kill(pid, signal.SIGKILL)
    _, _, _, _truncated, infos = envs.step((weather,) * 3)
    assert infos["turn"].tolist() == [2, 2, 2]
    envs.close()
    assert_no_new_process(before)
