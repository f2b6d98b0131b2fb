"""Latency of ``env.step`` with one tool call, and of its parts (parse, reward, sandbox round trip)."""

from __future__ import annotations

import argparse
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
    parser.add_argument("--samples", type=int, default=20000, help="timed calls per row")
    parser.add_argument("--max-turns", type=int, default=20)
    args = parser.parse_args(argv)

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
