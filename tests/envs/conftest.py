"""Fixtures of the env tests."""

from __future__ import annotations

import gymnasium as gym
import pytest
from env_helpers import FIXTURE

from ftrl_gym.envs.registration import CUSTOM_ID


@pytest.fixture
def custom_env():
    """``FTRL-Custom-v0`` over the fixture tasks, closed after the test."""
    env = gym.make(CUSTOM_ID, tasks=str(FIXTURE))
    yield env
    env.close()
