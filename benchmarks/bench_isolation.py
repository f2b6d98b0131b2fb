"""What the sandbox's isolation costs, measured side by side in one run.

- a steady ``env.step`` with one tool call (the episode's process is already running);
- reset + first step of a stateless task, minus a steady step: the cost of a fresh, forked process per
  episode (its fork and warm-up happen ahead of time, off the episode's path);
- reset + first step of a stateful task whose world state is 5 MB of JSON;
- one sandboxed call against a bare persistent child that answers a JSON call over a pipe (no
  isolation at all: the floor of any out-of-process design).

``python benchmarks/bench_isolation.py [--samples 2000] [--episodes 300] [--state-mb 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

import ftrl_gym  # noqa: F401  (registers the ids)
from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall

CODE = "def get_weather(city):\n    return {'city': city, 'sky': 'Snow', 'temperature_c': -3}\n"
LOOKUP = "def lookup(key, data):\n    return data['rows'].get(key, 'missing')\n"
ACTION = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
STATE_ACTION = '<tool_call>\n{"name": "lookup", "arguments": {"key": "k7"}}\n</tool_call>'
BARE_CHILD = """import json, sys
def get_weather(city):
    return {'city': city, 'sky': 'Snow', 'temperature_c': -3}
for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.write(json.dumps(get_weather(**request)) + "\\n")
    sys.stdout.flush()
"""


def task(name: str, code: str, state: Any = None) -> dict[str, Any]:
    """A one-tool task record whose answer is never reached (episodes end by truncation)."""
    record: dict[str, Any] = {
        "messages": [{"role": "user", "content": "Look it up."}],
        "tools": [{"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}],
        "codes": {name: code},
        "unsolved_set": {name: ["never returned"]},
        "answer": "never",
    }
    if state is not None:
        record["state"] = state
    return record


def median_us(samples: Sequence[float]) -> float:
    """Median in microseconds."""
    return statistics.median(samples) * 1e6


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e9


def steady_and_first(env: gym.Env, action: str, episodes: int, gap_s: float) -> tuple[list[float], list[float]]:
    """Per episode: reset + first step, then the second step (the steady one)."""
    first, steady = [], []
    for index in range(episodes):
        first.append(timed(lambda: (env.reset(seed=index), env.step(action))))
        steady.append(timed(lambda: env.step(action)))
        if gap_s:
            time.sleep(gap_s)  # an agent thinks between episodes; the next process is forked meanwhile
    return first, steady


def bare_child_samples(samples: int) -> list[float]:
    """One JSON call round trip to a bare persistent child over pipes."""
    child = subprocess.Popen([sys.executable, "-c", BARE_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, bufsize=1)
    assert child.stdin is not None and child.stdout is not None
    request = json.dumps({"city": "Oslo"}) + "\n"

    def call() -> None:
        child.stdin.write(request)  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        child.stdout.readline()  # type: ignore[union-attr]

    try:
        for _ in range(100):
            call()
        return [timed(call) for _ in range(samples)]
    finally:
        child.kill()
        child.wait()


def sandbox_call_samples(sandbox: Sandbox, samples: int) -> list[float]:
    """One call round trip of a running session."""
    with sandbox.open_session({"get_weather": CODE}) as session:
        calls = [ToolCall("get_weather", {"city": "Oslo"})]
        for _ in range(100):
            session.call(calls)
        return [timed(lambda: session.call(calls)) for _ in range(samples)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000, help="timed calls for the per-call rows")
    parser.add_argument("--episodes", type=int, default=300, help="episodes for the per-episode rows")
    parser.add_argument("--state-mb", type=float, default=5.0, help="size of the stateful task's state")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="pause between episodes (an agent's think time)")
    args = parser.parse_args(argv)

    with Sandbox(SandboxConfig(timeout_s=10)) as sandbox:
        layers = ", ".join(name for name, held in sandbox.layers.items() if held)
        stateless = gym.make("FTRL-Custom-v0", tasks=[task("get_weather", CODE)], sandbox=sandbox, max_turns=50)
        steady_and_first(stateless, ACTION, 20, 0.0)
        first, steady = steady_and_first(stateless, ACTION, args.episodes, args.gap_ms / 1000)
        back_to_back, _ = steady_and_first(stateless, ACTION, args.episodes, 0.0)
        rows = max(1, int(args.state_mb * 1024 * 1024 / 40))
        state = {"rows": {f"k{i}": f"value-{i:08d}-" + "x" * 16 for i in range(rows)}}
        size_mb = len(json.dumps(state)) / 1e6
        stateful = gym.make("FTRL-Custom-v0", tasks=[task("lookup", LOOKUP, state)], sandbox=sandbox, max_turns=50)
        state_first, state_steady = steady_and_first(stateful, STATE_ACTION, max(10, args.episodes // 20), 0.0)
        call = sandbox_call_samples(sandbox, args.samples)
        stateless.close()
        stateful.close()
    bare = bare_child_samples(args.samples)

    isolation = median_us(first) - median_us(steady)
    print(f"OS layers held: {layers}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    print("| measurement | median µs |")
    print("|---|---:|")
    print(f"| env.step, one call, steady | {median_us(steady):.1f} |")
    print(f"| reset + first step, stateless ({args.gap_ms:g} ms between episodes) | {median_us(first):.1f} |")
    print(f"| per-episode isolation cost (the row above minus a steady step) | {isolation:.1f} |")
    print(f"| reset + first step, stateless, episodes back to back | {median_us(back_to_back):.1f} |")
    print(f"| reset + first step, stateful, {size_mb:.1f} MB state | {median_us(state_first):.1f} |")
    print(f"| env.step, stateful, steady | {median_us(state_steady):.1f} |")
    print(f"| sandbox session call, one call | {median_us(call):.1f} |")
    print(f"| bare persistent child, JSON over a pipe | {median_us(bare):.1f} |")
    print(f"\nsandboxed call / bare child: {statistics.median(call) / statistics.median(bare):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
