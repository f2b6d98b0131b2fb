"""Latency of ``env.step`` with one tool call, and of its parts (parse, reward, sandbox round trip).

``--stateful-mb 5`` times instead ``reset`` plus the first ``step`` of a stateful task over a world
state of that many MB (the cost an episode pays to start: handing the state to the sandbox).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence

import gymnasium as gym

import ftrl_gym  # noqa: F401  (registers the ids)
from ftrl_gym.parsing import parse_response
from ftrl_gym.reward import turn_reward
from ftrl_gym.sandbox import Sandbox, ToolCall

ACTION = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
"""One call that does not solve the task, so episodes only end by truncation."""
CODE = {"get_weather": "def get_weather(city):\n    return {'city': city, 'sky': 'Snow', 'temperature_c': -3}\n"}
TASK = {
    "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "codes": CODE,
    "unsolved_set": {"get_weather": ["Sunny, 21"]},
    "answer": "Sunny",
}
"""A one-tool task (independent of the shipped datasets)."""


BALANCE_CODE = (
    "def get_balance(user_id, data):\n"
    "    account = data['accounts'][user_id]\n"
    "    return f\"{account['owner']}: {account['balance']:.2f}\"\n"
)
"""A stateful tool reading one account of the world state."""


def stateful_task(megabytes: float) -> dict:
    """A one-tool task whose world state is a bank of about ``megabytes`` MB of JSON."""
    accounts = {}
    size = 2  # the braces of {"accounts": ...}
    while size < megabytes * 1e6:
        i = len(accounts)
        accounts[f"u{i:07d}"] = account = {"owner": f"Customer number {i}", "balance": i * 1.5, "history": [i, i + 1]}
        size += len(f'"u{i:07d}": ') + len(json.dumps(account)) + len(", ")
    return {
        "messages": [{"role": "user", "content": "What is the balance of u0000001?"}],
        "tools": [{"type": "function", "function": {"name": "get_balance", "parameters": {
            "type": "object", "properties": {"user_id": {"type": "string"}}, "required": ["user_id"]}}}],
        "codes": {"get_balance": BALANCE_CODE},
        "unsolved_set": {"get_balance": ["1.50"]},
        "answer": "1.50",
        "state": {"accounts": accounts},
    }


def stateful_reset_samples(megabytes: float, samples: int) -> tuple[list[float], list[float]]:
    """Time ``reset`` and ``reset`` plus the first one-call ``step`` of a stateful task, per episode."""
    env = gym.make("FTRL-Custom-v0", tasks=[stateful_task(megabytes)])
    action = '<tool_call>{"name": "get_balance", "arguments": {"user_id": "u0000001"}}</tool_call>'
    resets, episodes = [], []
    for _ in range(samples):
        start = time.perf_counter_ns()
        env.reset(seed=0)
        reset_done = time.perf_counter_ns()
        _, reward, *_ = env.step(action)
        done = time.perf_counter_ns()
        assert reward == 1.0, reward
        resets.append((reset_done - start) / 1e9)
        episodes.append((done - start) / 1e9)
    env.close()
    return resets, episodes


def stateful_main(megabytes: float, samples: int) -> int:
    """Print median and p90 of reset and of reset + first step for a stateful task, in ms."""
    start = time.perf_counter()
    task = stateful_task(megabytes)
    size = len(json.dumps(task["state"])) / 1e6
    built = time.perf_counter()
    load_env = gym.make("FTRL-Custom-v0", tasks=[task])
    load_s = time.perf_counter() - built
    load_env.close()
    stateful_reset_samples(megabytes, 2)  # warm up: tool compilation, imports
    resets, episodes = stateful_reset_samples(megabytes, samples)
    print(f"stateful task, {size:.2f} MB of state (built in {built - start:.2f} s, gym.make {load_s * 1e3:.0f} ms), "
          f"{samples} episodes\n")
    print(f"| {'what':<32} | {'median ms':>10} | {'p90 ms':>8} |")
    print(f"|{'-' * 34}|{'-' * 12}|{'-' * 10}|")
    for name, seconds in (("reset", resets), ("reset + first step (1 call)", episodes)):
        p90 = statistics.quantiles(seconds, n=10)[-1]
        print(f"| {name:<32} | {statistics.median(seconds) * 1e3:>10.1f} | {p90 * 1e3:>8.1f} |")
    return 0


def time_samples(fn: Callable[[], object], samples: int) -> list[float]:
    """Wall-clock seconds of ``samples`` calls of ``fn``, one sample per call."""
    out = []
    for _ in range(samples):
        start = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - start) / 1e9)
    return out


def env_step_samples(samples: int, max_turns: int) -> list[float]:
    """Time ``env.step(ACTION)`` through ``gym.make`` (resets, untimed, when an episode is truncated)."""
    env = gym.make("FTRL-Custom-v0", tasks=[TASK], max_turns=max_turns)
    out: list[float] = []
    while len(out) < samples:
        env.reset(seed=0)
        for _ in range(max_turns):
            start = time.perf_counter_ns()
            _, _, terminated, truncated, _ = env.step(ACTION)
            out.append((time.perf_counter_ns() - start) / 1e9)
            if terminated or truncated:
                break
    env.close()
    return out[:samples]


def sandbox_samples(samples: int) -> list[float]:
    """Time one-call round trips of a sandbox session (the floor under ``env.step``)."""
    with Sandbox() as sandbox:
        session = sandbox.open_session(CODE)
        calls = [ToolCall("get_weather", {"city": "Oslo"})]
        return time_samples(lambda: session.call(calls), samples)


def row(name: str, seconds: Sequence[float]) -> str:
    """One table row: median and p90 in microseconds, and the rate the median implies."""
    median = statistics.median(seconds)
    p90 = statistics.quantiles(seconds, n=10)[-1]
    return f"| {name:<32} | {median * 1e6:>10.1f} | {p90 * 1e6:>8.1f} | {1 / median:>12,.0f} |"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=None,
                        help="timed calls per row (default 20000; 30 episodes with --stateful-mb)")
    parser.add_argument("--max-turns", type=int, default=20)
    parser.add_argument("--stateful-mb", type=float, default=None,
                        help="time reset + first step of a stateful task with this many MB of state instead")
    args = parser.parse_args(argv)
    if args.stateful_mb is not None:
        return stateful_main(args.stateful_mb, args.samples or 30)
    args.samples = args.samples or 20000

    warmup = max(100, args.samples // 20)
    env_step_samples(warmup, args.max_turns)
    parsed = parse_response(ACTION)
    rows = [
        row("parse_response (1 call)", time_samples(lambda: parse_response(ACTION, "call_1"), args.samples)),
        row("turn_reward (1 call)", time_samples(
            lambda: turn_reward(parsed.content, [("get_weather", '{"sky": "Snow"}')], {"get_weather": ["Sunny"]}),
            args.samples,
        )),
        row("sandbox session.call (1 call)", sandbox_samples(args.samples)),
        row("env.step (1 call, gym.make)", env_step_samples(args.samples, args.max_turns)),
    ]
    print(f"env.step with one tool call (FTRL-Custom-v0, max_turns={args.max_turns}), {args.samples} samples per row\n")
    print(f"| {'what':<32} | {'median µs':>10} | {'p90 µs':>8} | {'per second':>12} |")
    print(f"|{'-' * 34}|{'-' * 12}|{'-' * 10}|{'-' * 14}|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
