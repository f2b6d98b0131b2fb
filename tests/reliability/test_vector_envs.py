"""Vector envs over many episodes: sub-envs that reset while their neighbours step keep the batch going."""

from __future__ import annotations

import gymnasium as gym
import pytest

CALL = '<tool_call>{"name": "no_such_tool", "arguments": {}}</tool_call>'


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_autoreset_beside_a_stepping_env_keeps_infos_batched(mode: str) -> None:
    envs = gym.make_vec("FTRL-SingleHop-v0", num_envs=2, vectorization_mode=mode, split="test")
    try:
        envs.reset(seed=0)
        _, _, terminated, _, _ = envs.step(("The answer is unknown.", CALL))
        assert terminated.tolist() == [True, False]
        _obs, rewards, terminated, truncated, infos = envs.step(("ignored: env 0 resets", CALL))
        assert infos["turn"].tolist() == [0, 2]
        assert infos["_reward_breakdown"].tolist() == [True, True]
        assert infos["reward_breakdown"]["num_calls"].tolist() == [0, 1]
        assert rewards.tolist() == [0.0, 0.0] and not terminated.any() and not truncated.any()
    finally:
        envs.close()
