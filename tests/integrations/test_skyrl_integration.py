"""SkyRL-gym builds FTRL episodes with its own registry and plays them through ``BaseTextEnv``'s step contract."""

from __future__ import annotations

import pytest

skyrl_gym = pytest.importorskip(
    "skyrl_gym", reason="SkyRL tests need skyrl-gym: pip install 'ftrl-gym[skyrl]'"
)

from integration_helpers import TICK_TASK, hermes_calls, plain_env_rewards
from skyrl_gym.envs.base_text_env import BaseTextEnv

from ftrl_gym.errors import EnvConfigError
from ftrl_gym.integrations.skyrl import (
    SKYRL_ENV_CLASS,
    FTRLTextEnv,
    register_skyrl_env,
    skyrl_dataset_rows,
)

ENV_ID = "FTRL-MultiHop-v0"


def skyrl_episode(row: dict, responses: list[str], env_config: dict | None = None):
    """Play one episode the way SkyRL's generator does: make from the registry, init, step until done.

    Returns:
        The chat history, the per-turn rewards, the step outputs' metadata and the env's metrics.
    """
    env = skyrl_gym.make(row["env_class"], env_config=env_config or {}, extras=row)
    assert isinstance(env, BaseTextEnv)
    try:
        chat_history, _ = env.init(row.get("prompt"))
        rewards, metadata = [], []
        for response in responses:
            output = env.step(response)
            chat_history = [
                *chat_history,
                {"role": "assistant", "content": response},
                *output["observations"],
            ]
            rewards.append(output["reward"])
            metadata.append(output["metadata"])
            if output["done"]:
                break
        return chat_history, rewards, metadata, env.get_metrics()
    finally:
        env.close()


def test_reference_solution_through_skyrl_gym_make_and_step():
    assert register_skyrl_env() == SKYRL_ENV_CLASS == register_skyrl_env()  # idempotent
    rows = skyrl_dataset_rows(ENV_ID, split="test")
    row = rows[3]
    assert row["env_class"] == "ftrl" and row["task_index"] == 3
    assert row["prompt"][0]["role"] == "system" and "<tools>" in row["prompt"][0]["content"]
    probe = FTRLTextEnv(extras=row)
    task = probe.task
    probe.close()
    responses = [hermes_calls(*turn) for turn in task.solution] + [f"The answer is {task.answer}."]
    history, rewards, metadata, metrics = skyrl_episode(row, responses)
    # every multi-hop turn makes one solving call (2*1/(1+1)); the answer with none left scores 1/(1+0)
    assert rewards == [1.0] * len(task.solution) + [1.0] == plain_env_rewards(ENV_ID, 3, responses)
    assert metrics["solve_f1"] == 1.0 and metrics["calls"] == len(task.solution)
    assert [m["reward_breakdown"]["branch"] for m in metadata][-1] == "final_answer"
    tool_turns = [m for m in history if m["role"] == "user"][1:]
    assert len(tool_turns) == len(task.solution)
    assert all(m["content"].startswith("<tool_response>") for m in tool_turns)


def test_turn_rewards_of_one_turn_with_two_calls_and_state_through_extras():
    register_skyrl_env()
    row = {"env_class": SKYRL_ENV_CLASS, "task": TICK_TASK}
    two_calls = hermes_calls(
        {"name": "tick", "arguments": {"label": "a"}}, {"name": "tick", "arguments": {"label": "b"}}
    )
    history, rewards, metadata, metrics = skyrl_episode(
        row, [two_calls, "2 ticks."], env_config={"max_turns": 4}
    )
    assert rewards == pytest.approx([4 / 3, 1.0])  # 2*2/(2+1), then 1/(1+0)
    assert [r["text"] for r in metadata[0]["tool_results"]] == ["a 1", "b 2"]
    assert (
        history[0]["role"] == "system" and "tick" in history[0]["content"]
    )  # the task's prompt with its tools
    assert metrics == {
        "solve_p": 1.0,
        "solve_r": 1.0,
        "solve_f1": 1.0,
        "calls": 2,
        "solved": 2,
        "total_answers": 2,
    }


def test_wrong_unknown_and_malformed_calls_are_scored_not_raised():
    register_skyrl_env()
    row = {"env_class": SKYRL_ENV_CLASS, "task": TICK_TASK}
    wrong_label = hermes_calls(
        {"name": "tick", "arguments": {"label": "().__class__.__mro__[1].__subclasses__()"}}
    )
    _, rewards, metadata, _ = skyrl_episode(row, [wrong_label, "<tool_call>{not json</tool_call>"])
    assert rewards == [0.0, -0.3]  # a call that solves nothing: 2*0/(1+1); a format error
    assert metadata[1]["reward_breakdown"]["branch"] == "format_error"
    _, rewards, metadata, _ = skyrl_episode(row, [hermes_calls({"name": "rm_rf", "arguments": {}})])
    assert rewards == [0.0] and metadata[0]["tool_results"][0]["text"].startswith("error")


def test_turns_run_out_at_max_turns():
    register_skyrl_env()
    row = {"env_class": SKYRL_ENV_CLASS, "task": TICK_TASK, "max_turns": 1}
    _, rewards, metadata, _ = skyrl_episode(
        row, [hermes_calls({"name": "tick", "arguments": {"label": "a"}}), "2"]
    )
    assert rewards == [1.0] and metadata[0]["truncation_reason"] == "max_turns"


def test_bad_task_index_says_what_was_expected():
    with pytest.raises(
        EnvConfigError,
        match=r"task_index must be an int in 0\.\.\d+ for FTRL-MultiHop-v0 \(test\), got 'x'",
    ):
        FTRLTextEnv(extras={"env_id": ENV_ID, "split": "test", "task_index": "x"})
