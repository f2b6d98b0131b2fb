"""Agents for ftrl-gym: the ``Agent`` protocol, oracle/random baselines, OpenAI, HF and vLLM agents.

``agents`` is a generic top-level name: the OpenAI Agents SDK (``openai-agents``) installs a package
of the same name, and whichever is installed last wins. Where both are needed, install them in
separate environments. The model-backed agents import their heavy dependencies (openai, torch,
transformers, vllm) only when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from ftrl_gym.agents.base import Agent, AgentOutput, BaseAgent, Message, Request, Response, ToolSchema
from ftrl_gym.agents.baselines import OracleAgent, RandomAgent

_LAZY = {
    "OpenAIAgent": "ftrl_gym.agents.openai_agent",
    "HFAgent": "ftrl_gym.agents.hf_agent",
    "VLLMAgent": "ftrl_gym.agents.vllm_agent",
}

__all__ = [
    "Agent",
    "AgentOutput",
    "BaseAgent",
    "HFAgent",
    "Message",
    "OpenAIAgent",
    "OracleAgent",
    "RandomAgent",
    "Request",
    "Response",
    "ToolSchema",
    "VLLMAgent",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
