"""Every registered id: check_env, seeded determinism, pickling, and sync/async vector envs."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from env_helpers import id_kwargs, make
from gymnasium.utils.env_checker import check_env, data_equivalence

from ftrl_gym.envs.registration import CUSTOM_ID, ENV_IDS

ACTIONS = [
    '<tool_call>{"name": "get_capital", "arguments": {"country": "Norway"}}</tool_call>',
    (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
        '<tool_call>{"name": "transfer", "arguments": {"from_account": "checking", "to_account": "savings", "amount": 5}}</tool_call>'
    ),
    "The answer is Oslo.",
]


def rollout(env: gym.Env, seed: int) -> list:
    """Reset with a seed, then play ACTIONS until the episode ends; return everything returned."""
    trace = [env.reset(seed=seed)]
    for action in ACTIONS:
        step = env.step(action)
        trace.append(step)
        if step[2] or step[3]:
            break
    return trace


def test_every_id_is_registered():
    assert set(ENV_IDS) <= set(gym.registry)
    assert gym.make("ftrl_gym:FTRL-MultiHop-v0").unwrapped.tasks[0].scenario == "multi_hop"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    env = make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_episode(env_id):
    first, second = make(env_id), make(env_id)
    for seed in (0, 7):
        trace_1, trace_2 = rollout(first, seed), rollout(second, seed)
        assert data_equivalence(trace_1, trace_2, exact=True)
    tasks_drawn = {first.reset(seed=s)[1]["task_index"] for s in range(30)}
    assert len(tasks_drawn) > 1
    first.close()
    second.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_round_trip_mid_episode(env_id):
    env = make(env_id)
    env.reset(seed=3)
    env.step(ACTIONS[0])
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.task == env.unwrapped.task
    assert clone.unwrapped.get_state() == env.unwrapped.get_state()
    assert data_equivalence(clone.step(ACTIONS[1]), env.step(ACTIONS[1]), exact=True)
    assert data_equivalence(rollout(clone, 11), rollout(env, 11), exact=True)
    clone.close()
    env.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", ["FTRL-Mixed-v0", CUSTOM_ID])
def test_make_vec_steps_a_batch_of_text_actions(env_id, mode):
    vec = gym.make_vec(env_id, num_envs=4, vectorization_mode=mode, **id_kwargs(env_id))
    observations, _ = vec.reset(seed=5)
    actions = (ACTIONS[0], ACTIONS[1], ACTIONS[2], "")
    observations, rewards, terminated, _truncated, _infos = vec.step(actions)
    expected = []
    for i, action in enumerate(actions):
        single = make(env_id)
        single.reset(seed=5 + i)
        obs, reward, *_ = single.step(action)
        assert observations[i] == obs
        expected.append(reward)
        single.close()
    assert rewards.shape == (4,)
    np.testing.assert_allclose(rewards, expected)
    assert rewards[3] == -0.5
    assert terminated.tolist() == [False, False, True, True]
    vec.close()
