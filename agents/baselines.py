"""The ceiling and the floor of every table: ``OracleAgent`` and ``RandomAgent``."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from ftrl_gym.agents.base import BaseAgent, Message, ToolSchema
from ftrl_gym.errors import AgentError


def format_tool_calls(calls: Sequence[dict[str, Any]]) -> str:
    """Render calls as Hermes ``<tool_call>`` blocks, the text format every env parses.

    Args:
        calls: ``{"name": str, "arguments": dict}`` items.

    Returns:
        One ``<tool_call>{json}</tool_call>`` block per call, newline separated.
    """
    blocks = []
    for call in calls:
        body = json.dumps({"name": call["name"], "arguments": call.get("arguments", {})})
        blocks.append(f"<tool_call>\n{body}\n</tool_call>")
    return "\n".join(blocks)


def _conversation_key(messages: Sequence[Message], tools: Sequence[ToolSchema]) -> str:
    """Identify an episode by its first user message and its tool names (stable across turns)."""
    question = next((m.get("content") for m in messages if m.get("role") == "user"), None)
    return json.dumps([question, _tool_names(tools)], sort_keys=True, default=str)


def _tool_names(tools: Sequence[ToolSchema]) -> list[str]:
    return sorted(str(t.get("function", t).get("name")) for t in tools)


def _assistant_turns(messages: Sequence[Message]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


class OracleAgent(BaseAgent):
    """Plays the task's reference ``solution`` turn by turn, then states ``task.answer``.

    ``reset(task)`` registers the episode; ``act`` finds it again by its first user message and tool
    names, so any number of episodes may be open at once (a task whose later user turns add tools is
    found by its question and the tools offered so far). An empty turn of the solution is a text reply,
    which ends a user turn of a task with scripted ``user_turns``. On a task whose solution is valid it
    scores Solve-F1 = 1.
    """

    name = "oracle"

    def __init__(self) -> None:
        self._episodes: dict[str, tuple[Any, int]] = {}

    def reset(self, task: Any) -> None:
        """Register the episode's task (its ``messages``, ``tools``, ``solution`` and ``answer``).

        Raises:
            AgentError: The task carries no reference ``solution`` (an empty one, for a task that
                wants no call, is played as a text answer).
        """
        if getattr(task, "solution", None) is None:
            raise AgentError("OracleAgent needs tasks with a reference 'solution'; this one has none")
        key = _conversation_key(task.messages, task.tools)
        self._episodes[key] = (task, _assistant_turns(task.messages))

    def act(self, messages: list[Message], tools: list[ToolSchema]) -> str:
        """Return the next reference turn, or the final answer once the solution is played.

        Raises:
            AgentError: No task was registered with ``reset`` for this conversation.
        """
        key = _conversation_key(messages, tools)
        if key not in self._episodes:
            key = self._offered_subset(messages, tools)
        if key is None or key not in self._episodes:
            raise AgentError("OracleAgent.act called for a conversation it was not reset with")
        task, opening_turns = self._episodes[key]
        turn = _assistant_turns(messages) - opening_turns
        if turn < len(task.solution) and task.solution[turn]:
            return format_tool_calls(task.solution[turn])
        if turn < len(task.solution):
            return "I have done what this request asks."
        answer = getattr(task, "answer", None)
        return f"The answer is {answer}." if answer else "I have finished the task."


    def _offered_subset(self, messages: list[Message], tools: list[ToolSchema]) -> str | None:
        """The key of the one registered episode with this question whose tools include those offered
        now (a task that adds tools at a later user turn offers only some of them)."""
        question = json.loads(_conversation_key(messages, []))[0]
        offered = set(_tool_names(tools))
        keys = [k for k in self._episodes if json.loads(k)[0] == question and offered <= set(json.loads(k)[1])]
        return keys[0] if len(keys) == 1 else None


class RandomAgent(BaseAgent):
    """Calls random tools with random, schema-valid arguments; stops at random with a text answer.

    Args:
        seed: Seed of the agent's own ``random.Random``; its draws follow the order of requests.
        answer_prob: Probability that a turn is a final text answer instead of tool calls.
        max_calls: Most tool calls in one turn (the number is drawn uniformly from 1..max_calls).
    """

    def __init__(self, seed: int = 0, answer_prob: float = 0.3, max_calls: int = 2) -> None:
        if not 0.0 <= answer_prob <= 1.0:
            raise ValueError(f"answer_prob must be in [0, 1], got {answer_prob}")
        if max_calls < 1:
            raise ValueError(f"max_calls must be at least 1, got {max_calls}")
        self.seed = seed
        self.answer_prob = answer_prob
        self.max_calls = max_calls
        self.name = f"random(seed={seed})"
        self._rng = random.Random(seed)

    def act(self, messages: list[Message], tools: list[ToolSchema]) -> str:
        """Return random tool calls, or a final answer with probability ``answer_prob``."""
        if not tools or self._rng.random() < self.answer_prob:
            return "I cannot find the answer."
        calls = []
        for _ in range(self._rng.randint(1, self.max_calls)):
            function = self._rng.choice(tools).get("function", {})
            schema = function.get("parameters") or {"type": "object", "properties": {}}
            calls.append({"name": function.get("name", ""), "arguments": random_value(schema, self._rng)})
        return format_tool_calls(calls)


_WORDS = ("alpha", "paris", "2024", "blue", "42", "london", "tool", "x", "data", "none")


def random_value(schema: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """Draw a random value that satisfies a (simple) JSON schema.

    Handles ``enum``, ``const``, ``anyOf``/``oneOf``, the JSON types (a list of types picks one), numeric
    bounds, array ``items`` and ``minItems``, and object ``properties`` (every required property and a
    random subset of the others).

    Args:
        schema: The JSON schema.
        rng: The random source.
        depth: Nesting depth, to stop recursive schemas.

    Returns:
        A JSON-safe value.
    """
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return random_value(rng.choice(options), rng, depth + 1)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = rng.choice(kind) if kind else "string"
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 100)
        if kind == "integer":
            return rng.randint(int(low), int(high))
        return round(rng.uniform(float(low), float(high)), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "array":
        if depth > 3:
            return []
        size = rng.randint(int(schema.get("minItems", 0)), max(int(schema.get("minItems", 0)), 3))
        return [random_value(schema.get("items", {}), rng, depth + 1) for _ in range(size)]
    if kind == "object":
        return _random_object(schema, rng, depth)
    return rng.choice(_WORDS)


def _random_object(schema: dict[str, Any], rng: random.Random, depth: int) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    if depth > 3:
        return {}
    return {
        name: random_value(sub or {}, rng, depth + 1)
        for name, sub in properties.items()
        if name in required or rng.random() < 0.5
    }
