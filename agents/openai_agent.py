"""``OpenAIAgent``: any OpenAI-compatible chat endpoint (OpenAI, ``vllm serve``, ...) with native tools."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ftrl_gym.agents.base import AgentOutput, BaseAgent, Message, Request, ToolSchema
from ftrl_gym.errors import AgentError

LOCAL_API_KEY = "EMPTY"
"""The key sent to a ``base_url`` server when none is given (``vllm serve`` accepts any)."""


class OpenAIAgent(BaseAgent):
    """Ask a chat-completions endpoint for each turn, passing the tool schemas as native ``tools``.

    The endpoint answers with an assistant message whose ``tool_calls`` the env runs as they are. A
    batch of turns is sent concurrently, at most ``max_concurrency`` requests at a time. Transient
    failures (connection, timeout, rate limit, 5xx) are retried with exponential backoff; what is left
    after the retries raises ``AgentError``. Token usage is summed in ``usage``.

    Args:
        model: Model name; None asks the server (``/v1/models``) and takes the first model listed.
        base_url: Endpoint root such as ``http://127.0.0.1:8000/v1``; default ``$OPENAI_BASE_URL``, then
            OpenAI's.
        api_key: Default ``$OPENAI_API_KEY``; ``"EMPTY"`` for a ``base_url`` server without one.
        max_tokens: Most tokens per turn.
        temperature: Sampling temperature.
        max_concurrency: Most requests in flight at once.
        max_retries: Retries of a transient failure before giving up.
        backoff_s: First retry delay; doubled each retry, with up to 25% jitter.
        timeout_s: Seconds before one request times out.
        extra_body: Extra JSON fields for every request (server-specific options).

    Raises:
        AgentError: No key for OpenAI itself, the endpoint is unreachable, or it lists no model.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        max_concurrency: int = 8,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        timeout_s: float = 120.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        import openai

        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if key is None and base_url is None and not os.environ.get("OPENAI_BASE_URL"):
            raise AgentError(
                "OpenAIAgent needs OPENAI_API_KEY for OpenAI, or base_url= (--base-url) for another "
                "OpenAI-compatible server"
            )
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key=key or LOCAL_API_KEY, max_retries=0, timeout=timeout_s
        )
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.extra_body = extra_body
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0}
        self._lock = threading.Lock()
        self._jitter = random.Random(0)
        self.model = model or self._first_model()
        self.name = f"openai:{self.model}"

    def _first_model(self) -> str:
        models = self._with_retries(lambda: list(self.client.models.list()))
        if not models:
            raise AgentError(f"the endpoint {self.base_url} lists no model; pass model= (--model)")
        return str(models[0].id)

    def generate(self, requests: Sequence[Request]) -> list[AgentOutput]:
        """Send every request, ``max_concurrency`` at a time; results come back in request order."""
        if len(requests) == 1:
            return [self._complete(*requests[0])]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            return list(pool.map(lambda request: self._complete(*request), requests))

    def _complete(self, messages: list[Message], tools: list[ToolSchema]) -> AgentOutput:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [_clean_message(m) for m in messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if tools:
            arguments.update(tools=tools, tool_choice="auto")
        if self.extra_body:
            arguments["extra_body"] = self.extra_body
        completion = self._with_retries(lambda: self.client.chat.completions.create(**arguments))
        message = completion.choices[0].message
        response: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
        if message.tool_calls:
            response["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in message.tool_calls
            ]
        usage = completion.usage
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        with self._lock:
            self.usage["prompt_tokens"] += prompt_tokens
            self.usage["completion_tokens"] += completion_tokens
            self.usage["requests"] += 1
        return AgentOutput(response, prompt_tokens, completion_tokens)

    def _with_retries(self, send: Any) -> Any:
        """Call ``send()``, retrying transient API failures; raise ``AgentError`` for the rest."""
        transient = (
            self._openai.APIConnectionError,  # includes APITimeoutError
            self._openai.RateLimitError,
            self._openai.InternalServerError,
        )
        for attempt in range(self.max_retries + 1):
            try:
                return send()
            except transient as exc:
                if attempt == self.max_retries:
                    raise AgentError(self._failure(exc, attempt + 1)) from exc
                with self._lock:
                    jitter = 1.0 + 0.25 * self._jitter.random()
                time.sleep(self.backoff_s * 2**attempt * jitter)
            except self._openai.APIError as exc:
                raise AgentError(f"the endpoint {self.base_url} refused the request: {exc}") from exc
        raise AssertionError("unreachable")

    def _failure(self, exc: Exception, attempts: int) -> str:
        if isinstance(exc, self._openai.APIConnectionError):
            return (
                f"cannot reach the OpenAI-compatible endpoint {self.base_url} after {attempts} "
                f"attempts ({type(exc).__name__}: {exc}); is the server running and the URL right?"
            )
        return f"the endpoint {self.base_url} kept failing after {attempts} attempts: {exc}"


def _clean_message(message: Message) -> Message:
    """Keep the fields chat-completions accepts; ``None`` content becomes ``""``."""
    allowed = ("role", "content", "name", "tool_calls", "tool_call_id")
    cleaned = {k: message[k] for k in allowed if k in message}
    if cleaned.get("content") is None:
        cleaned["content"] = ""
    if cleaned.get("role") != "tool":
        cleaned.pop("tool_call_id", None)
    return cleaned
