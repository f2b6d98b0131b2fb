"""A stateful task and a plain-env replay shared by the adapter tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import gymnasium as gym

TICK_TASK: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Tick for a, then for b, and say how many ticks."}],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "tick",
                "description": "Count one tick.",
                "parameters": {
                    "type": "object",
                    "properties": {"label": {"type": "string", "description": "A label."}},
                    "required": ["label"],
                },
            },
        }
    ],
    "codes": {
        "tick": "def tick(label, data):\n"
        "    data['ticks'] += 1\n"
        "    return f'{label} {data[\"ticks\"]}'\n"
    },
    "unsolved_set": {"tick": ["a 1", "b 2"]},
    "answer": "2",
    "state": {"ticks": 0},
}
"""A stateful task whose tool counts its own runs: ``tick(label="a")`` returns ``"a 1"`` the first time."""


def hermes_calls(*calls: dict[str, Any]) -> str:
    """Response text with one Hermes ``<tool_call>`` block per call."""
    return "\n".join("<tool_call>\n" + json.dumps(call) + "\n</tool_call>" for call in calls)


def plain_env_rewards(
    env_id: str, task_index: int, actions: Iterable[Any], max_turns: int = 20
) -> list[float]:
    """The turn rewards of a fresh ``gym.make(env_id, split="test")`` stepped with ``actions``."""
    env = gym.make(env_id, split="test", max_turns=max_turns)
    try:
        env.reset(options={"task_index": task_index})
        rewards = []
        for action in actions:
            _, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        return rewards
    finally:
        env.close()
