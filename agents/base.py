"""The ``Agent`` protocol: a policy that maps (messages, tools) to the assistant's next response."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

Message: TypeAlias = dict[str, Any]
"""One OpenAI chat message (``{"role": ..., "content": ..., ...}``)."""

ToolSchema: TypeAlias = dict[str, Any]
"""One OpenAI function-tool schema (``{"type": "function", "function": {...}}``)."""

Response: TypeAlias = "str | dict[str, Any]"
"""What an agent answers: text with ``<tool_call>`` blocks, or an OpenAI assistant message dict."""

Request: TypeAlias = tuple[list[Message], list[ToolSchema]]
"""One pending turn of one episode: the conversation so far and the tool schemas."""


@dataclass(frozen=True)
class AgentOutput:
    """A response together with the tokens it cost, as model-backed agents report it.

    Attributes:
        response: The assistant's response, passed unchanged to ``env.step``.
        prompt_tokens: Tokens of the rendered prompt (0 when the agent does not know).
        completion_tokens: Tokens the model generated (0 when the agent does not know).
        stop_reason: None, or why the agent cannot go on: ``"context_limit"`` when the conversation no
            longer fits the model's context window. The harness then ends the episode as truncated
            with that reason, without stepping the env.
    """

    response: Response
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stop_reason: str | None = None


@runtime_checkable
class Agent(Protocol):
    """What the harness needs of a policy; only ``act`` is required.

    An agent never sees the reward: it reads the conversation ``info["messages"]`` and the tool schemas
    ``info["tools"]`` of a ``ToolUseEnv`` and returns the next assistant turn. Optional members, used
    when present:

    - ``act_batch(requests) -> list[Response]``: answer many episodes' turns at once (batched
      generation, concurrent requests). Without it the harness calls ``act`` once per request.
    - ``generate(requests) -> list[AgentOutput]``: like ``act_batch`` but with token counts.
    - ``reset(task)``: called with the episode's ``TaskRecord`` before its first turn (the oracle reads
      the reference solution there). Several episodes may be open at once, so an agent that keeps
      per-episode state must key it by the conversation, not assume one episode at a time.
    - ``name``: the label results are stored and reported under.
    - ``close()``: release engines, clients or worker threads.
    """

    def act(self, messages: list[Message], tools: list[ToolSchema]) -> Response:
        """Return the next assistant response for one conversation.

        Args:
            messages: The conversation so far, OpenAI format (``info["messages"]``).
            tools: The OpenAI function-tool schemas available (``info["tools"]``).

        Returns:
            Text with ``<tool_call>`` blocks, or an OpenAI assistant message dict with ``tool_calls``.
        """
        ...


class BaseAgent:
    """Convenience base: implement ``generate`` (batched, with tokens) and get the rest.

    Subclasses override ``generate``; ``act`` and ``act_batch`` are derived from it. Agents that cannot
    batch may override ``act`` instead and leave ``generate`` to call it per request.
    """

    name: str = "agent"

    def act(self, messages: list[Message], tools: list[ToolSchema]) -> Response:
        """Return the next assistant response for one conversation (see ``Agent.act``)."""
        return self.generate([(messages, tools)])[0].response

    def act_batch(self, requests: Sequence[Request]) -> list[Response]:
        """Return one response per request, in order."""
        return [output.response for output in self.generate(requests)]

    def generate(self, requests: Sequence[Request]) -> list[AgentOutput]:
        """Return one ``AgentOutput`` per request, in order; the default calls ``act`` per request."""
        if type(self).act is BaseAgent.act:
            raise NotImplementedError(f"{type(self).__name__} must override act or generate")
        return [AgentOutput(self.act(messages, tools)) for messages, tools in requests]

    def reset(self, task: Any) -> None:
        """Hook called with the episode's ``TaskRecord`` before its first turn; a no-op here."""

    def close(self) -> None:
        """Release resources; a no-op here."""


def agent_name(agent: object) -> str:
    """Return the label an agent's results are stored under: its ``name`` or its class name."""
    name = getattr(agent, "name", None)
    return name if isinstance(name, str) and name else type(agent).__name__


def generate_outputs(agent: object, requests: Sequence[Request]) -> list[AgentOutput]:
    """Answer a batch of requests with whichever form the agent implements, best first.

    Args:
        agent: Any object with ``generate``, ``act_batch`` or ``act``.
        requests: ``(messages, tools)`` pairs.

    Returns:
        One ``AgentOutput`` per request, in order (token counts 0 when the agent does not report them).

    Raises:
        TypeError: The agent has none of the three methods, or returned the wrong number of responses.
    """
    if not requests:
        return []
    if callable(getattr(agent, "generate", None)):
        outputs = list(agent.generate(requests))  # type: ignore[attr-defined]
    elif callable(getattr(agent, "act_batch", None)):
        outputs = [AgentOutput(r) for r in agent.act_batch(requests)]  # type: ignore[attr-defined]
    elif callable(getattr(agent, "act", None)):
        outputs = [AgentOutput(agent.act(m, t)) for m, t in requests]  # type: ignore[attr-defined]
    else:
        raise TypeError(f"{type(agent).__name__} is not an agent: it has no act(messages, tools)")
    if len(outputs) != len(requests):
        raise TypeError(
            f"{agent_name(agent)} returned {len(outputs)} responses for {len(requests)} requests"
        )
    return [o if isinstance(o, AgentOutput) else AgentOutput(o) for o in outputs]
