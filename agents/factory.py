"""The one agent factory: builds a named built-in agent or a user's ``module:Class`` agent."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

BUILTIN_AGENTS = ("oracle", "random", "openai", "hf", "vllm")
"""Names :func:`make_agent` knows; anything else must be ``module:Class``."""


@dataclass(frozen=True)
class AgentSettings:
    """What a model agent is built with; the baselines read only ``seed``.

    Attributes:
        model: A model folder, ``smollm2`` or a Hugging Face Hub id; None keeps the agent's default.
        max_tokens: Most new tokens per assistant turn.
        temperature: Sampling temperature (0 decodes greedily).
        seed: Sampling seed (and the random baseline's seed).
        concurrency: The transformers agent's batch size; the OpenAI agent's parallel requests.
        dtype: Model dtype of the local agents; None keeps the agent's default.
        device: Device of the transformers agent; None keeps its default.
        max_model_len: The vLLM engine's context (None: the model's whole window).
        kv_cache_gib: The vLLM engine's KV-cache size.
        base_url: The OpenAI-compatible endpoint.
        api_key: Its key.
        agent_kwargs: Keyword arguments of a ``module:Class`` agent; for ``hf``, ``vllm`` and
            ``openai`` they are added to (and override) the ones these settings give, e.g.
            ``{"max_model_len": 8192}`` for vLLM; ``oracle`` and ``random`` take none (one
            ``ftrl-gym eval`` may run them beside a model agent).
    """

    model: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    concurrency: int = 8
    dtype: str | None = None
    device: str | None = None
    max_model_len: int | None = 4096
    kv_cache_gib: float | None = 1.0
    base_url: str | None = None
    api_key: str | None = None
    agent_kwargs: dict[str, Any] = field(default_factory=dict)


def make_agent(spec: str, settings: AgentSettings | None = None) -> Any:
    """Build the agent named by ``spec``: a name of :data:`BUILTIN_AGENTS` or ``module:Class``.

    Raises:
        AgentError: A model agent cannot load its model or reach its endpoint.
        ValueError: ``spec`` is neither a built-in name nor an importable ``module:Class``.
    """
    s = settings or AgentSettings()
    if spec == "oracle":
        from ftrl_gym.agents.baselines import OracleAgent

        return OracleAgent()
    if spec == "random":
        from ftrl_gym.agents.baselines import RandomAgent

        return RandomAgent(seed=s.seed)
    local = {k: v for k, v in (("model", s.model), ("dtype", s.dtype)) if v is not None}
    if spec == "hf":
        from ftrl_gym.agents.hf_agent import HFAgent

        device = {"device": s.device} if s.device is not None else {}
        return _built_in(
            spec, HFAgent, s.agent_kwargs, **local, **device, max_new_tokens=s.max_tokens,
            temperature=s.temperature, batch_size=max(s.concurrency, 1), seed=s.seed,
        )
    if spec == "vllm":
        from ftrl_gym.agents.vllm_agent import VLLMAgent

        return _built_in(
            spec, VLLMAgent, s.agent_kwargs, **local, max_tokens=s.max_tokens,
            temperature=s.temperature, seed=s.seed, max_model_len=s.max_model_len,
            kv_cache_gib=s.kv_cache_gib,
        )
    if spec == "openai":
        from ftrl_gym.agents.openai_agent import OpenAIAgent

        return _built_in(
            spec, OpenAIAgent, s.agent_kwargs, model=s.model, base_url=s.base_url,
            api_key=s.api_key, max_tokens=s.max_tokens, temperature=s.temperature,
            max_concurrency=max(s.concurrency, 1),
        )
    if ":" in spec:
        return _user_agent(spec, s.agent_kwargs)
    raise ValueError(f"unknown agent {spec!r}: use one of {', '.join(BUILTIN_AGENTS)} or module:Class")


def _built_in(spec: str, cls: Any, extra: dict[str, Any], **settings: Any) -> Any:
    """``cls(**settings)`` with ``extra`` added on top; a keyword ``cls`` does not take is a ValueError."""
    parameters = inspect.signature(cls).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        names = {p.name for p in parameters}
        unknown = sorted(key for key in extra if key not in names)
        if unknown:
            raise ValueError(
                f"--agent {spec}: --agent-kwargs {extra} rejected ({cls.__name__} takes no "
                f"{', '.join(unknown)})"
            )
    return cls(**{**settings, **extra})


def _user_agent(spec: str, kwargs: dict[str, Any]) -> Any:
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--agent {spec}: cannot import module {module_name!r} ({exc})") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"--agent {spec}: module {module_name!r} has no {class_name!r}")
    return cls(**kwargs)
