"""Bounded chat-completion requests to an OpenAI-compatible endpoint, with retries, fallback and a cache."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftrl_gym.atomic import write_text_atomically
from ftrl_gym.errors import GenerationError
from ftrl_gym.generation.llm_prompts import MAX_TOKENS, STAGES, response_format

RESPONSE_FORMATS: tuple[str, ...] = ("json_schema", "json_object", "none")
"""What a request asks the server for: the stage's JSON schema, any JSON object, or nothing."""


@dataclass
class LLMConfig:
    """How to reach the endpoint and how much each request may cost."""

    model: str
    """Model name sent with every request."""
    base_url: str | None = None
    """Endpoint, e.g. ``http://localhost:8000/v1``; None means the OpenAI API."""
    api_key: str | None = None
    """Key; default ``$OPENAI_API_KEY``, or ``"EMPTY"`` for local servers that need none."""
    concurrency: int = 4
    """Candidates built at once (each is a chain of five requests), so at most this many requests in flight."""
    max_retries: int = 3
    """Retries of a request that failed in transport or with a 429/5xx status (not of a timeout)."""
    backoff_s: float = 1.0
    """First retry delay; it doubles with each retry."""
    timeout_s: float = 45.0
    """Seconds one request may take; a request that takes longer is its candidate's ``timeout``
    rejection and is not retried, so one stuck request costs at most this long."""
    temperature: float = 0.7
    """Sampling temperature (the cache keeps runs reproducible whatever it is)."""
    response_format: str = "json_schema"
    """``json_schema`` (each stage's schema, enforced by vLLM/SGLang; a server that refuses it with a
    400/422 is asked again with ``json_object`` for the rest of the run), ``json_object`` or ``none``."""
    max_tokens: dict[str, int] = field(default_factory=lambda: dict(MAX_TOKENS))
    """``max_tokens`` per stage; an answer cut off there is its candidate's ``truncated`` rejection."""
    max_candidates: int | None = None
    """Candidates tried per scenario before giving up; None: ``n * max_attempts_factor + 20``."""
    cache_dir: Path | None = None
    """Response cache; None disables caching."""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("LLMConfig.model is required, e.g. --model gpt-4o-mini")
        if self.concurrency < 1 or self.max_retries < 0 or self.backoff_s < 0:
            raise ValueError(
                "LLMConfig needs concurrency >= 1, max_retries >= 0 and backoff_s >= 0, got "
                f"{self.concurrency}, {self.max_retries}, {self.backoff_s}"
            )
        if self.timeout_s <= 0:
            raise ValueError(f"LLMConfig.timeout_s must be > 0 seconds, got {self.timeout_s}")
        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(
                f"LLMConfig.response_format must be one of {', '.join(RESPONSE_FORMATS)}, "
                f"got {self.response_format!r}"
            )
        if sorted(self.max_tokens) != sorted(STAGES) or min(self.max_tokens.values()) < 1:
            raise ValueError(
                f"LLMConfig.max_tokens needs a count >= 1 for each of {', '.join(STAGES)}, "
                f"got {self.max_tokens}"
            )
        if self.max_candidates is not None and self.max_candidates < 1:
            raise ValueError(f"LLMConfig.max_candidates must be >= 1, got {self.max_candidates}")


def parse_max_tokens(text: str) -> dict[str, int]:
    """Parse ``--max-tokens``: one count for every stage (``800``) or ``stage=count`` pairs.

    Pairs override the defaults of :data:`~ftrl_gym.generation.llm_prompts.MAX_TOKENS` for the
    stages they name (``scene=256,deployment=4096``).

    Raises:
        ValueError: A count is not a positive integer, or a stage is unknown.
    """
    if "=" not in text:
        return dict.fromkeys(STAGES, _positive(text, "--max-tokens"))
    limits = dict(MAX_TOKENS)
    for pair in text.split(","):
        stage, _, count = pair.partition("=")
        if stage.strip() not in STAGES:
            raise ValueError(
                f"--max-tokens: unknown stage {stage.strip()!r}; choose from {', '.join(STAGES)}"
            )
        limits[stage.strip()] = _positive(count, f"--max-tokens {stage.strip()}")
    return limits


def _positive(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{what} must be a positive integer, got {text.strip()!r}")
    return value


class ResponseCache:
    """Responses on disk, one JSON file per request, keyed by the sha256 of the request.

    An interrupted run resumes where it stopped; a finished run replays without a single request.
    """

    def __init__(self, root: Path | None) -> None:
        self.root = root

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        """Return the cache key of a request (everything that determines the answer)."""
        return hashlib.sha256(
            json.dumps(request, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()

    def get(self, key: str) -> Reply | None:
        """Return the cached reply, or None."""
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
        return Reply(record["content"], record.get("finish_reason"))

    def put(self, key: str, request: dict[str, Any], reply: Reply) -> None:
        """Store a reply atomically, with its request for inspection."""
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "request": request,
            "content": reply.content,
            "finish_reason": reply.finish_reason,
        }
        write_text_atomically(path, json.dumps(record, ensure_ascii=False))

    def _path(self, key: str) -> Path | None:
        return None if self.root is None else self.root / key[:2] / f"{key}.json"


@dataclass(frozen=True)
class Reply:
    """The assistant's content and why generation stopped (``length``: cut off at ``max_tokens``)."""

    content: str
    finish_reason: str | None


class RequestTimedOut(Exception):
    """A request got no answer within ``LLMConfig.timeout_s``; its candidate is rejected, the run goes on."""


class ChatClient:
    """Chat completions through the ``openai`` package: bounded, retried, cached.

    Attributes:
        requests: HTTP requests sent so far (retries included, cache hits excluded).
        format: The ``response_format`` kind in use; ``json_object`` after a server refused ``json_schema``.
        refusal: The server's message when it refused ``json_schema``, else None.
        listener: Called with ``"request"`` before every HTTP request (a progress display).
    """

    def __init__(self, config: LLMConfig) -> None:
        try:
            import openai
        except ImportError as exc:
            raise GenerationError(
                "the openai backend needs the openai package: pip install 'ftrl-gym[openai]'"
            ) from exc
        self._openai = openai
        self.config = config
        key = config.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._client = openai.OpenAI(
            base_url=config.base_url, api_key=key, max_retries=0, timeout=config.timeout_s
        )
        self.cache = ResponseCache(config.cache_dir)
        self.requests = 0
        self.format = config.response_format
        self.refusal: str | None = None
        self.listener: Callable[[str], None] | None = None
        self.failure: GenerationError | None = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """The endpoint, for messages."""
        return self.config.base_url or "the OpenAI API"

    def complete(self, stage: str, system: str, user: str) -> Reply:
        """Return the reply to a stage's two-message conversation (from the cache when there).

        The cache key is the request as configured, so a run whose server refused ``json_schema``
        replays from the cache like any other.

        Raises:
            RequestTimedOut: No answer within ``timeout_s``.
            GenerationError: The endpoint kept failing after every retry, refused the request (4xx),
                or an earlier request of the run failed so (the run is stopping).
        """
        request = self._request(stage, system, user, self.config.response_format)
        key = self.cache.key(request)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        reply = self._send(self._request(stage, system, user, self.format))
        self.cache.put(key, request, reply)
        return reply

    def _request(self, stage: str, system: str, user: str, kind: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.config.model,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens[stage],
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        }
        form = response_format(stage, kind)
        return request if form is None else request | {"response_format": form}

    def _send(self, request: dict[str, Any]) -> Reply:
        """Send one request: retry transport errors, 429 and 5xx with backoff; fall back from a refused schema."""
        oa = self._openai
        retryable = (oa.APIConnectionError, oa.RateLimitError, oa.InternalServerError)
        for attempt in range(self.config.max_retries + 1):
            self._count()
            try:
                response = self._client.chat.completions.create(**request)
                choice = response.choices[0]
                return Reply(choice.message.content or "", choice.finish_reason)
            except oa.APITimeoutError as exc:
                raise RequestTimedOut(f"no answer in {self.config.timeout_s:g} s") from exc
            except retryable as exc:
                if attempt == self.config.max_retries:
                    raise self._fail(
                        f"{self.where} failed {attempt + 1} times; last error: {exc}"
                    ) from exc
                time.sleep(self.config.backoff_s * 2**attempt)
            except oa.APIStatusError as exc:
                if exc.status_code in (400, 422) and self._refused_schema(request, exc):
                    return self._send(request | {"response_format": {"type": "json_object"}})
                raise self._fail(self._refused(exc)) from exc
            except oa.OpenAIError as exc:
                raise self._fail(f"{self.where} gave an unusable answer: {exc}") from exc
        raise AssertionError("unreachable")

    def _count(self) -> None:
        """Count one HTTP request; stop instead when another request of the run already failed."""
        with self._lock:
            if self.failure is not None:
                raise GenerationError(str(self.failure))
            self.requests += 1
        if self.listener is not None:
            self.listener("request")

    def _fail(self, message: str) -> GenerationError:
        """Record the run's first fatal error, so the other candidates stop sending requests."""
        error = GenerationError(message)
        with self._lock:
            self.failure = self.failure or error
        return error

    def _refused_schema(self, request: dict[str, Any], exc: Any) -> bool:
        """Switch the run to ``json_object`` when a ``json_schema`` request was refused; say whether it was."""
        if request.get("response_format", {}).get("type") != "json_schema":
            return False
        with self._lock:
            self.format, self.refusal = "json_object", f"({exc.status_code}) {exc.message}"
        return True

    def _refused(self, exc: Any) -> str:
        """The message of a refused request; a 404 lists the models the server does serve."""
        if exc.status_code == 404:
            try:
                names = sorted(m.id for m in self._client.models.list())
            except self._openai.OpenAIError:
                names = []
            if names and self.config.model not in names:
                return (
                    f"model {self.config.model!r} is not served at {self.where}; "
                    f"it serves: {', '.join(names)}"
                )
        return f"{self.where} refused the request ({exc.status_code}): {exc.message}"
