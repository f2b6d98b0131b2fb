"""Observations rendered through a Hugging Face chat template with the tools: exactly what an LLM reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym

from ftrl_gym.envs.spaces import LLMText

PROMPT_MAX_LENGTH = 2**20
"""Characters of the rendered-prompt observation space."""


def render_chat_prompt(
    tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]], **template_kwargs: Any
) -> str:
    """Render a conversation and its tools as the prompt of the next assistant turn.

    Args:
        tokenizer: Anything with ``apply_chat_template`` (a ``transformers`` tokenizer).
        messages: The conversation, OpenAI format (``info["messages"]``).
        tools: The tool schemas (``info["tools"]``).
        **template_kwargs: Passed to the template, e.g. ``enable_thinking=False`` for Qwen3.

    Returns:
        The prompt text, ending with the generation prompt of the assistant turn.
    """
    return tokenizer.apply_chat_template(
        template_messages(messages), tools=tools, add_generation_prompt=True, tokenize=False, **template_kwargs
    )


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy OpenAI messages into the shape chat templates expect.

    Templates such as Qwen's write ``arguments | tojson``, which would double-encode the JSON string
    of OpenAI messages; here arguments become dicts and a None content becomes ``""``.

    Args:
        messages: OpenAI chat messages.

    Returns:
        New message dicts (the input is not modified).
    """
    out = []
    for message in messages:
        copy = {**message, "content": message.get("content") or ""}
        if message.get("tool_calls"):
            copy["tool_calls"] = [_decoded(call) for call in message["tool_calls"]]
        out.append(copy)
    return out


def _decoded(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    if isinstance(function.get("arguments"), str):
        try:
            function["arguments"] = json.loads(function["arguments"])
        except json.JSONDecodeError:
            pass
    return {**call, "function": function}


def load_tokenizer(name_or_path: str) -> Any:
    """Load a tokenizer with ``transformers`` (imported here, only when needed).

    Args:
        name_or_path: A Hugging Face model id or local directory.

    Returns:
        The tokenizer.

    Raises:
        ImportError: ``transformers`` is not installed (the message says how to install it).
    """
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ImportError(
            "ChatTemplateObservation with a model name needs transformers: pip install transformers"
        ) from exc
    return AutoTokenizer.from_pretrained(name_or_path)


class ChatTemplateObservation(gym.Wrapper):
    """Replace each observation with the full prompt of the next turn, rendered by a chat template.

    The wrapped env's observation is only the newest text (the question, or tool responses); this
    wrapper renders ``info["messages"]`` with ``info["tools"]`` through the tokenizer's chat template,
    with the generation prompt appended, so the observation is the exact string a model continues.
    The unwrapped observation is kept in ``info["text_observation"]``.

    Example:
        >>> env = ChatTemplateObservation(gym.make("FTRL-MultiHop-v0"), "Qwen/Qwen2.5-7B-Instruct")
    """

    def __init__(
        self,
        env: gym.Env,
        tokenizer: Any,
        render: Callable[..., str] = render_chat_prompt,
        **template_kwargs: Any,
    ) -> None:
        """Wrap an env.

        Args:
            env: A ``ToolUseEnv`` (possibly wrapped).
            tokenizer: A tokenizer with ``apply_chat_template``, or a model name/path to load one.
            render: ``render(tokenizer, messages, tools, **template_kwargs) -> str``; the default
                passes ``tools=`` to the template. Pass another for templates that ignore tools.
            **template_kwargs: Passed to every ``render`` call.
        """
        super().__init__(env)
        self.tokenizer = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.render_prompt = render
        self.template_kwargs = template_kwargs
        self.observation_space = LLMText(PROMPT_MAX_LENGTH)

    def _render(self, observation: str, info: dict[str, Any]) -> str:
        info["text_observation"] = observation
        return self.render_prompt(self.tokenizer, info["messages"], info["tools"], **self.template_kwargs)

    def reset(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        """Reset and render the opening prompt."""
        observation, info = self.env.reset(**kwargs)
        return self._render(observation, info), info

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step and render the prompt of the next turn."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        return self._render(observation, info), reward, terminated, truncated, info
