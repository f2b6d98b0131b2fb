"""Gymnasium envs of ftrl-gym: ``ToolUseEnv``, its text spaces, the registered ids and the chat-template wrapper."""

from __future__ import annotations

from ftrl_gym.envs.registration import BFCL_ID, BUILTIN_IDS, CUSTOM_ID, ENV_IDS, register_envs

__all__ = [
    "BFCL_ID",
    "BUILTIN_IDS",
    "CUSTOM_ID",
    "ENV_IDS",
    "ChatTemplateObservation",
    "LLMText",
    "ToolUseEnv",
    "ToolUseEnvConfig",
    "register_envs",
    "render_chat_prompt",
]


def __getattr__(name: str):
    """Import the env machinery on first use, so that ``import ftrl_gym`` only registers ids."""
    lazy = {
        "ToolUseEnv": "ftrl_gym.envs.tool_use_env",
        "ToolUseEnvConfig": "ftrl_gym.envs.config",
        "LLMText": "ftrl_gym.envs.spaces",
        "ChatTemplateObservation": "ftrl_gym.envs.chat_template",
        "render_chat_prompt": "ftrl_gym.envs.chat_template",
    }
    if name not in lazy:
        raise AttributeError(f"module 'ftrl_gym.envs' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(lazy[name]), name)
