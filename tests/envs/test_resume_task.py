"""``ToolUseEnv.resume_task``: an episode's prefix as a record that scores the next turn like the episode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gymnasium.error import ResetNeeded

from ftrl_gym.envs.tool_use_env import ToolUseEnv
from ftrl_gym.tasks import load_tasks

DATA = Path(__file__).resolve().parents[1] / "data" / "tasks.jsonl"


def call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def test_resume_task_continues_the_episode_state_answers_and_rate():
    bank = load_tasks(DATA)[2]
    transfer = call("transfer", from_account="checking", to_account="savings", amount=40)
    balance = call("get_balance", account="savings")
    env = ToolUseEnv([bank])
    try:
        with pytest.raises(ResetNeeded, match="call reset"):
            env.resume_task()
        env.reset(options={"task_index": 0})
        env.step(transfer)
        resumed = env.resume_task()
        assert resumed.state == {"accounts": {"checking": 60.0, "savings": 140.0}}
        assert resumed.unsolved_set == {"transfer": [], "get_balance": ["savings balance: 140.00"]}
        assert resumed.solve_rate == 0.5 and resumed.solution is None
        assert [m["role"] for m in resumed.messages] == ["user", "assistant", "tool"]
        _, episode_reward, *_ = env.step(balance)
        assert bank.state == {
            "accounts": {"checking": 100.0, "savings": 100.0}
        }  # the record is untouched
    finally:
        env.close()
    fresh = ToolUseEnv([resumed])
    try:
        fresh.reset(options={"task_index": 0})
        _, reward, *_ = fresh.step(balance)
    finally:
        fresh.close()
    assert reward == episode_reward == pytest.approx(2 * 1 / (1 + 1))
