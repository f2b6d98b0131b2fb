"""ftrl-gym: Gymnasium environments for teaching LLMs to use tools with reinforcement learning."""

from __future__ import annotations

from ftrl_gym.envs.registration import ENV_IDS, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "__version__", "register_envs"]

register_envs()
