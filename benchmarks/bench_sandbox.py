"""Per-call latency of tool execution: plain Python, the reference's exec + thread timeout, our sandbox.

Run ``python benchmarks/bench_sandbox.py`` (``--help`` for sizes). Prints a Markdown table of median and
p99 latency and calls per second for a 10-line stateless tool and for a stateful tool over 5 MB of
``data``, then the ratio of the reference's median to ours. Samples of all approaches are interleaved
in rounds, so that load from other processes hits them alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from func_timeout import func_timeout

from ftrl_gym.sandbox import Sandbox, SandboxConfig, ToolCall

WEATHER = """
def get_weather(city: str, unit: str = "celsius") -> str:
    table = {
        "paris": {"temp": 18, "sky": "cloudy"},
        "tokyo": {"temp": 24, "sky": "sunny"},
        "lima": {"temp": 20, "sky": "fog"},
    }
    entry = table.get(city.lower())
    if entry is None:
        return f"error: unknown city {city}"
    temp = entry["temp"] if unit == "celsius" else entry["temp"] * 9 / 5 + 32
    return f"{city.title()}: {temp} degrees {unit}, {entry['sky']}"
"""
"""The stateless tool: a dict lookup and an f-string, ten lines."""

BALANCE = """
def get_balance(user_id: str, currency: str = "USD", data=None) -> str:
    account = data["accounts"].get(user_id)
    if account is None:
        return f"error: no account {user_id}"
    rates = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79}
    if currency not in rates:
        return f"error: unsupported currency {currency}"
    account["reads"] += 1
    amount = account["balance"] * rates[currency]
    return f"{account['owner']}: {amount:.2f} {currency} ({account['reads']} reads)"
"""
"""The stateful tool, also ten lines: reads and updates one account of a 5 MB world state."""

TIMEOUT_S = 10.0
"""Per-call timeout of both the reference approach and the sandbox (the product's default)."""


def make_state(megabytes: float = 5.0) -> dict[str, Any]:
    """A bank with enough accounts that its JSON is about ``megabytes`` MB."""
    accounts = {}
    i = 0
    while i % 1000 or len(json.dumps(accounts)) < megabytes * 1e6:
        accounts[f"u{i:07d}"] = {
            "owner": f"Customer number {i}",
            "balance": i * 1.5,
            "reads": 0,
            "history": [i, i + 1, i + 2],
        }
        i += 1
    return {"accounts": accounts}


def plain_call(source: str, name: str, arguments: dict[str, Any]) -> Callable[[], Any]:
    """(a) The function, compiled once, called directly."""
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - trusted benchmark code
    function = namespace[name]
    return lambda: function(**arguments)


def reference_call(source: str, name: str, arguments: dict[str, Any]) -> Callable[[], Any]:
    """(b) The reference's approach: ``exec`` the source, then call under a ``func_timeout`` thread timeout."""

    def run() -> Any:
        namespace: dict[str, Any] = {}
        exec(source, namespace)  # noqa: S102 - trusted benchmark code
        return func_timeout(TIMEOUT_S, namespace[name], kwargs=arguments)

    return run


def sandbox_call(
    sandbox: Sandbox,
    source: str,
    name: str,
    arguments: dict[str, Any],
    state: Any = None,
    batch: int = 1,
) -> Callable[[], Any]:
    """(c) Our sandbox: one round trip to a persistent worker per batch of ``batch`` calls."""
    session = sandbox.open_session({name: source}, state)
    calls = [ToolCall(name, arguments)] * batch
    first = session.call(calls)
    assert all(r.ok for r in first), first
    return lambda: session.call(calls)


def measure(
    cases: dict[str, Callable[[], Any]], rounds: int, per_round: int
) -> dict[str, list[float]]:
    """Seconds per call of every case, ``rounds`` rounds of ``per_round`` calls, cases interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            out = samples[name]
            for _ in range(per_round):
                start = time.perf_counter()
                run()
                out.append(time.perf_counter() - start)
    return samples


def row(
    label: str, seconds: list[float], calls_per_sample: int = 1
) -> tuple[str, float, float, float]:
    """``(label, median µs, p99 µs, calls/s)`` for samples that each covered ``calls_per_sample`` calls."""
    per_call = sorted(s / calls_per_sample for s in seconds)
    median = statistics.median(per_call)
    p99 = per_call[min(len(per_call) - 1, int(0.99 * len(per_call)))]
    return label, median * 1e6, p99 * 1e6, 1.0 / statistics.fmean(per_call)


def print_table(title: str, rows: list[tuple[str, float, float, float]]) -> None:
    print(f"\n{title}\n")
    print("| approach | median µs/call | p99 µs/call | calls/s |")
    print("|---|---:|---:|---:|")
    for label, median, p99, rate in rows:
        print(f"| {label} | {median:.1f} | {p99:.1f} | {rate:,.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument(
        "--per-round", type=int, default=500, help="calls per case per round (default 500)"
    )
    parser.add_argument(
        "--state-mb", type=float, default=5.0, help="size of the stateful tool's data"
    )
    args = parser.parse_args(argv)

    weather_args = {"city": "Paris", "unit": "celsius"}
    state = make_state(args.state_mb)
    balance_args = {"user_id": "u0000042", "currency": "EUR"}
    with Sandbox(SandboxConfig(timeout_s=TIMEOUT_S)) as sandbox:
        stateless = {
            "(a) plain Python call": plain_call(WEATHER, "get_weather", weather_args),
            "(b) reference: exec + func_timeout thread": reference_call(
                WEATHER, "get_weather", weather_args
            ),
            "(c) ftrl-gym sandbox, 1 call per round trip": sandbox_call(
                sandbox, WEATHER, "get_weather", weather_args
            ),
            "(c) ftrl-gym sandbox, batch of 4 calls": sandbox_call(
                sandbox, WEATHER, "get_weather", weather_args, batch=4
            ),
        }
        stateful = {
            "(a) plain Python call": plain_call(
                BALANCE, "get_balance", {**balance_args, "data": state}
            ),
            "(b) reference: exec + func_timeout thread": reference_call(
                BALANCE, "get_balance", {**balance_args, "data": state}
            ),
            "(c) ftrl-gym sandbox, 1 call per round trip": sandbox_call(
                sandbox, BALANCE, "get_balance", balance_args, state=state
            ),
        }
        measure(
            {
                **{f"s{k}": v for k, v in stateless.items()},
                **{f"t{k}": v for k, v in stateful.items()},
            },
            1,
            200,
        )
        stateless_samples = measure(stateless, args.rounds, args.per_round)
        stateful_samples = measure(stateful, args.rounds, args.per_round)

    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{args.rounds} x {args.per_round} calls per approach, interleaved"
    )
    stateless_rows = [row(k, v, 4 if "batch" in k else 1) for k, v in stateless_samples.items()]
    stateful_rows = [row(k, v) for k, v in stateful_samples.items()]
    print_table("Stateless 10-line tool (dict lookup + f-string)", stateless_rows)
    print_table(f"Stateful tool over {len(json.dumps(state)) / 1e6:.1f} MB of data", stateful_rows)
    for title, rows in (("stateless", stateless_rows), ("stateful", stateful_rows)):
        ratio = rows[1][1] / rows[2][1]
        print(f"\n{title}: reference median / sandbox median = {ratio:.1f}x (target >= 5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
