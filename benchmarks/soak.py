"""Soak run: a million env steps in one process, watching throughput, memory, worker processes and fds."""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import psutil

import ftrl_gym  # noqa: F401  (registers the ids)
from ftrl_gym.sandbox import Sandbox, SandboxConfig

HOSTILE_TIMEOUT_S = 0.5
"""Per-call wall-clock limit of the hostile envs' sandbox (a hanging tool costs this much)."""
HOSTILE_MEMORY_MB = 256
"""Memory limit of the hostile envs' sandbox workers."""

HOSTILE_CODES: dict[str, str] = {
    "lookup": "def lookup(key, data=None):\n    return {'key': key, 'value': 'v-' + str(key)}\n",
    "hang": "def hang(data=None):\n    while True:\n        pass\n",
    "allocate": (
        "def allocate(data=None):\n    blocks = []\n    while True:\n"
        "        blocks.append(' ' * 64_000_000)\n"
    ),
    "explode": "def explode(data=None):\n    raise ValueError('boom')\n",
    "recurse": "def recurse(data=None):\n    return recurse(data)\n",
    "flood": (
        "def flood(data=None):\n    for i in range(2000):\n        print('spam' * 50)\n"
        "    return 'y' * 1_000_000\n"
    ),
    "bump": "def bump(data=None):\n    if data is None:\n        return 0\n"
            "    data['n'] = data.get('n', 0) + 1\n    return data['n']\n",
}
"""Tools of the hostile tasks: one well-behaved lookup, and tools that hang, allocate, raise, recurse,
print-flood, and (stateful) mutate the world state."""

RARE_HOSTILE = ("hang", "allocate")
"""Hostile tools that cost a worker restart or a timeout; drawn with ``--rare-rate`` per hostile call."""
CHEAP_HOSTILE = ("explode", "recurse", "flood")
"""Hostile tools that fail inside the worker without killing it."""


def hostile_task(stateful: bool) -> dict[str, Any]:
    """A task whose toolset mixes one honest tool with hostile ones (FTRL-Custom-v0 record).

    Args:
        stateful: Give the task a world state, so that a dead worker truncates the episode.

    Returns:
        A task record as a dict.
    """
    tools = [
        {"type": "function", "function": {"name": name, "description": f"{name} tool",
                                          "parameters": {"type": "object", "properties": {}}}}
        for name in HOSTILE_CODES
    ]
    record: dict[str, Any] = {
        "messages": [{"role": "user", "content": "Look up key 7, then answer."}],
        "tools": tools,
        "codes": HOSTILE_CODES,
        "unsolved_set": {"lookup": ["v-7"]},
        "answer": "v-7",
    }
    if stateful:
        record["state"] = {"n": 0}
    return record


def call_block(name: str, arguments: Any) -> str:
    """One Hermes ``<tool_call>`` block."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


class RandomAgent:
    """Hostile and careless actions drawn from a seeded ``random.Random``: garbage text, malformed and
    partial tool-call blocks, unknown tools, wrong arguments, message dicts and non-text objects."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def text(self, size: int) -> str:
        """Random unicode text, NULs and lone surrogates included."""
        alphabet = "abc xyz<>{}[]\":,\n\t\x00\u00e9\u4e2d\U0001f600\ud800"
        return "".join(self.rng.choice(alphabet) for _ in range(size))

    def act(self, tool_names: list[str], answer: str | None) -> Any:
        """One action for an episode whose tools are ``tool_names``."""
        rng = self.rng
        name = rng.choice(tool_names) if tool_names else "none"
        kind = rng.randrange(10)
        if kind == 0:
            return self.text(rng.randrange(200))
        if kind == 1:
            return ""
        if kind == 2:
            return call_block(name, {self.text(3): self.text(5)})
        if kind == 3:
            return call_block(self.text(8), {})
        if kind == 4:
            return "<tool_call>{\"name\": \"" + name + "\", \"arguments\": {" + self.text(20)
        if kind == 5:
            return "<tool_call><tool_call>" + call_block(name, {}) + "</tool_call>"
        if kind == 6:
            return {"role": "assistant", "content": self.text(10),
                    "tool_calls": [{"id": "x", "type": "function",
                                    "function": {"name": name, "arguments": json.dumps({"q": 1})}}]}
        if kind == 7:
            return rng.choice([None, 42, 3.5, ["list"], b"bytes\xff", {"content": 5}])
        if kind == 8:
            return "[" * rng.randrange(2000) + call_block(name, {"deep": [[[[1]]]]})
        return f"I think the answer is {answer}." if answer else self.text(30)


@dataclass
class Sample:
    """One row of the soak CSV."""

    elapsed_s: float
    steps: int
    episodes: int
    steps_per_s: float
    rss_mib: float
    workers: int
    zombies: int
    open_fds: int


@dataclass
class Totals:
    """Counters over the whole run."""

    steps: int = 0
    episodes: int = 0
    tool_errors: Counter[str] = field(default_factory=Counter)
    truncations: Counter[str] = field(default_factory=Counter)
    recycles: int = 0
    leaked_after_close: int = 0
    kills: int = 0


def classify_error(line: str) -> str:
    """The kind of one tool error line (for the fault counts)."""
    for key in ("timed out", "memory limit", "crashed", "state was lost", "raised", "unknown tool",
                "bad arguments", "could not"):
        if key in line:
            return key.replace(" ", "_")
    return "other"


class Soak:
    """Owns the envs and sandboxes of the run and plays mixed episodes on them."""

    def __init__(self, seed: int, rare_rate: float) -> None:
        self.rng = random.Random(seed)
        self.kill_rng = random.Random(seed + 1)
        self.agent = RandomAgent(self.rng)
        self.rare_rate = rare_rate
        self.process = psutil.Process()
        self.totals = Totals()
        self._open()

    def _open(self) -> None:
        self.sandbox = Sandbox(SandboxConfig(timeout_s=5.0))
        self.hostile_sandbox = Sandbox(SandboxConfig(timeout_s=HOSTILE_TIMEOUT_S, memory_mb=HOSTILE_MEMORY_MB))
        self.mixed = gym.make("FTRL-Mixed-v0", split="test", sandbox=self.sandbox)
        self.hostile = gym.make("FTRL-Custom-v0", tasks=[hostile_task(False), hostile_task(True)],
                                sandbox=self.hostile_sandbox, max_turns=8)
        self.mixed.reset(seed=self.rng.randrange(2**31))
        self.hostile.reset(seed=self.rng.randrange(2**31))

    def recycle(self) -> int:
        """Close every env and sandbox, count the processes left behind, and open fresh ones."""
        self.close()
        time.sleep(0.2)
        leaked = len(self.process.children(recursive=True))
        self.totals.recycles += 1
        self.totals.leaked_after_close += leaked
        self._open()
        return leaked

    def inject_kill(self) -> None:
        """SIGKILL one live episode process from outside, a few milliseconds from now (often mid-call)."""
        pids = self.sandbox.episode_pids + self.hostile_sandbox.episode_pids
        if not pids:
            return
        timer = threading.Timer(self.kill_rng.uniform(0.0, 0.005), _kill, [self.kill_rng.choice(pids)])
        timer.daemon = True
        timer.start()
        self.totals.kills += 1

    def close(self) -> None:
        """Close the envs, then their sandboxes (they were passed in, so the envs leave them open)."""
        for env in (self.mixed, self.hostile):
            env.close()
        self.sandbox.close()
        self.hostile_sandbox.close()

    def episode(self, budget: int) -> None:
        """Play one episode of a random scenario, at most ``budget`` steps."""
        roll = self.rng.random()
        if roll < 0.45:
            self._play(self.mixed, budget, oracle=True)
        elif roll < 0.85:
            self._play(self.mixed, budget, oracle=False)
        else:
            self._play(self.hostile, budget, oracle=False, hostile=True)

    def _play(self, env: gym.Env, budget: int, oracle: bool, hostile: bool = False) -> None:
        env.reset()
        task = env.unwrapped.task
        turns = list(task.solution or []) if oracle else []
        self.totals.episodes += 1
        for turn in range(budget):
            action = self._action(task, turns, turn, hostile)
            _, _, terminated, truncated, info = env.step(action)
            self.totals.steps += 1
            for result in info["tool_results"]:
                if not result["ok"]:
                    self.totals.tool_errors[classify_error(result["error"] or "")] += 1
            if truncated:
                self.totals.truncations[info["truncation_reason"]] += 1
            if terminated or truncated:
                return

    def _action(self, task: Any, turns: list[list[dict[str, Any]]], turn: int, hostile: bool) -> Any:
        if turns:
            if turn < len(turns):
                return "\n".join(call_block(c["name"], c["arguments"]) for c in turns[turn])
            return f"The answer is {task.answer}."
        if hostile:
            roll = self.rng.random()
            if roll < self.rare_rate:
                return call_block(self.rng.choice(RARE_HOSTILE), {})
            if roll < 0.35:
                return call_block(self.rng.choice(CHEAP_HOSTILE), {})
            if roll < 0.65:
                return call_block("bump", {}) + call_block("lookup", {"key": self.rng.randrange(10)})
        return self.agent.act(task.tool_names, task.answer)

    def sample(self, start: float, last: tuple[float, int]) -> Sample:
        """Measure the process now."""
        now = time.perf_counter()
        children = self.process.children(recursive=True)
        zombies = sum(1 for c in children if _status(c) == psutil.STATUS_ZOMBIE)
        window = now - last[0]
        return Sample(
            elapsed_s=round(now - start, 2),
            steps=self.totals.steps,
            episodes=self.totals.episodes,
            steps_per_s=round((self.totals.steps - last[1]) / window, 1) if window > 0 else 0.0,
            rss_mib=round(self.process.memory_info().rss / 2**20, 1),
            workers=len(children) - zombies,
            zombies=zombies,
            open_fds=self.process.num_fds(),
        )


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _status(process: psutil.Process) -> str:
    try:
        return process.status()
    except psutil.NoSuchProcess:
        return "gone"


def run(steps: int, out: Path, seed: int, sample_s: float, recycle_every: int, rare_rate: float,
        warmup_fraction: float, growth_bound_mib: float, kill_every: int) -> dict[str, Any]:
    """Play ``steps`` env steps and write ``soak.csv``, ``soak.png`` and ``soak.json`` under ``out``.

    Returns:
        The summary (also written to ``soak.json``).
    """
    out.mkdir(parents=True, exist_ok=True)
    soak = Soak(seed, rare_rate)
    start = time.perf_counter()
    samples = [soak.sample(start, (start, 0))]
    last = (start, 0)
    next_recycle = recycle_every
    next_kill = kill_every if kill_every > 0 else steps + 1
    with open(out / "soak.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(samples[0])))
        writer.writeheader()
        writer.writerow(asdict(samples[0]))
        while soak.totals.steps < steps:
            soak.episode(min(20, steps - soak.totals.steps))
            if soak.totals.steps >= next_kill:
                soak.inject_kill()
                next_kill += kill_every
            if soak.totals.steps >= next_recycle:
                soak.recycle()
                next_recycle += recycle_every
            if time.perf_counter() - last[0] >= sample_s or soak.totals.steps >= steps:
                sample = soak.sample(start, last)
                samples.append(sample)
                last = (time.perf_counter(), sample.steps)
                writer.writerow(asdict(sample))
                handle.flush()
                print(f"[{sample.elapsed_s:8.0f} s] {sample.steps:>9,} steps  {sample.steps_per_s:7.0f} steps/s  "
                      f"rss {sample.rss_mib:6.1f} MiB  workers {sample.workers}  zombies {sample.zombies}  "
                      f"fds {sample.open_fds}", flush=True)
    wall = time.perf_counter() - start
    soak.close()
    time.sleep(0.2)
    left = len(soak.process.children(recursive=True))
    summary = summarize(samples, soak.totals, wall, left, warmup_fraction, growth_bound_mib)
    (out / "soak.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(samples, out / "soak.png", summary)
    return summary


def summarize(samples: list[Sample], totals: Totals, wall: float, left_at_exit: int,
              warmup_fraction: float, growth_bound_mib: float) -> dict[str, Any]:
    """The run's figures: throughput, memory (with the growth after warm-up), processes, fds, faults."""
    warm = [s for s in samples if s.steps >= warmup_fraction * totals.steps] or samples[-1:]
    rates = [s.steps_per_s for s in samples[1:]] or [0.0]
    growth = max(s.rss_mib for s in warm) - warm[0].rss_mib
    return {
        "steps": totals.steps,
        "episodes": totals.episodes,
        "wall_s": round(wall, 1),
        "steps_per_s_mean": round(totals.steps / wall, 1),
        "steps_per_s_min": min(rates),
        "steps_per_s_max": max(rates),
        "rss_mib_min": min(s.rss_mib for s in samples),
        "rss_mib_max": max(s.rss_mib for s in samples),
        "rss_mib_after_warmup": warm[0].rss_mib,
        "rss_growth_after_warmup_mib": round(growth, 1),
        "rss_growth_bound_mib": growth_bound_mib,
        "rss_growth_within_bound": growth <= growth_bound_mib,
        "workers_max": max(s.workers for s in samples),
        "zombies_max": max(s.zombies for s in samples),
        "recycles": totals.recycles,
        "workers_sigkilled_from_outside": totals.kills,
        "workers_leaked_after_close": totals.leaked_after_close + left_at_exit,
        "open_fds_min": min(s.open_fds for s in samples),
        "open_fds_max": max(s.open_fds for s in samples),
        "tool_errors": dict(totals.tool_errors.most_common()),
        "truncations": dict(totals.truncations),
    }


def plot(samples: list[Sample], path: Path, summary: dict[str, Any]) -> None:
    """Four panels over elapsed time: steps/s, resident memory, worker processes, open fds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.elapsed_s / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    panels = [
        (axes[0][0], [s.steps_per_s for s in samples[1:]], minutes[1:], "steps/s (window)"),
        (axes[0][1], [s.rss_mib for s in samples], minutes, "resident memory (MiB)"),
        (axes[1][0], [s.workers for s in samples], minutes, "sandbox worker processes"),
        (axes[1][1], [s.open_fds for s in samples], minutes, "open file descriptors"),
    ]
    for ax, values, xs, title in panels:
        ax.plot(xs, values, lw=1)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1][0].plot(minutes, [s.zombies for s in samples], lw=1, color="red", label="zombies")
    axes[1][0].legend()
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    fig.suptitle(f"ftrl-gym soak: {summary['steps']:,} steps, {summary['steps_per_s_mean']:.0f} steps/s mean, "
                 f"RSS {summary['rss_mib_min']:.0f}-{summary['rss_mib_max']:.0f} MiB, "
                 f"{summary['workers_leaked_after_close']} workers leaked")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(summary: dict[str, Any]) -> None:
    """The summary as an aligned two-column table."""
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``python -m benchmarks.soak --steps 1000000 --out runs/soak``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps to play")
    parser.add_argument("--out", type=Path, default=Path("runs/soak"), help="folder for csv, png and json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-seconds", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--recycle-every", type=int, default=250_000,
                        help="close and reopen every env and sandbox after this many steps")
    parser.add_argument("--rare-rate", type=float, default=0.004,
                        help="chance that a hostile call hangs or allocates (each costs a timeout)")
    parser.add_argument("--kill-every", type=int, default=5000,
                        help="SIGKILL a sandbox worker from outside every this many steps (0: never)")
    parser.add_argument("--warmup-fraction", type=float, default=0.1,
                        help="memory growth is measured from this fraction of the steps on")
    parser.add_argument("--growth-bound-mib", type=float, default=64.0,
                        help="resident memory may grow at most this much after warm-up")
    args = parser.parse_args(argv)
    summary = run(args.steps, args.out, args.seed, args.sample_seconds, args.recycle_every, args.rare_rate,
                  args.warmup_fraction, args.growth_bound_mib, args.kill_every)
    print_table(summary)
    ok = summary["workers_leaked_after_close"] == 0 and summary["zombies_max"] == 0
    return 0 if ok and summary["rss_growth_within_bound"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
