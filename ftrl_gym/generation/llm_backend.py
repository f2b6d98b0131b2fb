"""The LLM backend: the five stages as prompts to any OpenAI-compatible endpoint."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftrl_gym.atomic import write_text_atomically
from ftrl_gym.errors import GenerationError
from ftrl_gym.generation.llm_prompts import (
    DOMAINS,
    SCENARIO_SHAPES,
    SHAPES,
    STAGES,
    BadOutput,
    check_shape,
    parse_json,
    scaling_ops,
    user_message,
)
from ftrl_gym.generation.pipeline import GenerationConfig, Summary, validation_sandbox
from ftrl_gym.generation.validation import validate
from ftrl_gym.sandbox import Sandbox
from ftrl_gym.tasks import TaskRecord


@dataclass
class LLMConfig:
    """How to reach the endpoint and how hard to try."""

    model: str
    """Model name sent with every request."""
    base_url: str | None = None
    """Endpoint, e.g. ``http://localhost:8000/v1``; None means the OpenAI API."""
    api_key: str | None = None
    """Key; default ``$OPENAI_API_KEY``, or ``"EMPTY"`` for local servers that need none."""
    concurrency: int = 4
    """Candidates built at once (each is a chain of five requests)."""
    max_retries: int = 4
    """Retries of a request that failed in transport or with a 429/5xx status."""
    backoff_s: float = 1.0
    """First retry delay; it doubles with each retry."""
    timeout_s: float = 120.0
    """Seconds one request may take."""
    temperature: float = 0.7
    """Sampling temperature (the cache keeps runs reproducible whatever it is)."""
    json_mode: bool = True
    """Ask for ``response_format={"type": "json_object"}``; turn off for servers that reject it."""
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

    def get(self, key: str) -> str | None:
        """Return the cached content, or None."""
        path = self._path(key)
        return (
            json.loads(path.read_text(encoding="utf-8"))["content"]
            if path and path.is_file()
            else None
        )

    def put(self, key: str, request: dict[str, Any], content: str) -> None:
        """Store a response atomically, with its request for inspection."""
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"request": request, "content": content}
        write_text_atomically(path, json.dumps(record, ensure_ascii=False))

    def _path(self, key: str) -> Path | None:
        return None if self.root is None else self.root / key[:2] / f"{key}.json"


class ChatClient:
    """Chat completions through the ``openai`` package, with retries, backoff and the cache."""

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
        self._lock = threading.Lock()

    def complete(self, system: str, user: str) -> str:
        """Return the assistant's content for a two-message conversation (from the cache when there).

        Raises:
            GenerationError: The endpoint kept failing after every retry, or refused the request (4xx).
        """
        request: dict[str, Any] = {
            "model": self.config.model,
            "temperature": self.config.temperature,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        }
        if self.config.json_mode:
            request["response_format"] = {"type": "json_object"}
        key = self.cache.key(request)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        content = self._send(request)
        self.cache.put(key, request, content)
        return content

    def _send(self, request: dict[str, Any]) -> str:
        """Send one request, retrying transport errors, 429 and 5xx with exponential backoff."""
        oa = self._openai
        retryable = (
            oa.APIConnectionError,
            oa.APITimeoutError,
            oa.RateLimitError,
            oa.InternalServerError,
        )
        for attempt in range(self.config.max_retries + 1):
            with self._lock:
                self.requests += 1
            try:
                response = self._client.chat.completions.create(**request)
                return response.choices[0].message.content or ""
            except retryable as exc:
                if attempt == self.config.max_retries:
                    raise GenerationError(
                        f"{self.config.base_url or 'OpenAI API'} failed "
                        f"{attempt + 1} times; last error: {exc}"
                    ) from exc
                time.sleep(self.config.backoff_s * 2**attempt)
            except oa.APIStatusError as exc:
                raise GenerationError(
                    f"{self.config.base_url or 'OpenAI API'} refused the request "
                    f"({exc.status_code}): {exc.message}"
                ) from exc
        raise AssertionError("unreachable")


@dataclass
class LLMCandidate:
    """A candidate from the model, or the reason it was rejected before validation."""

    index: int
    record: dict[str, Any] | None = None
    probes: list[dict[str, Any]] | None = None
    meta: dict[str, Any] | None = None
    rejection: BadOutput | None = None


def _ask(
    client: ChatClient, stage: str, context: dict[str, Any], system: str | None = None
) -> dict[str, Any]:
    """Run one stage: prompt, decode, check the shape."""
    value = parse_json(client.complete(system or STAGES[stage], user_message(stage, context)))
    check_shape(value, SHAPES[stage], stage)
    return value


def _schema(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {k: tool[k] for k in ("name", "description", "parameters")},
    }


def build_llm_candidate(
    client: ChatClient, scenario: str, index: int, config: GenerationConfig
) -> LLMCandidate:
    """Run the five stage prompts for one candidate; bad output becomes a rejection."""
    domain = DOMAINS[(config.seed + index) % len(DOMAINS)]
    context = {
        "scenario": scenario,
        "shape": SCENARIO_SHAPES[scenario],
        "domain": domain,
        "candidate": f"{config.seed}:{config.split}:{index}",
    }
    try:
        scene = _ask(client, "scene", context)
        docs = _ask(client, "documents", {"sub_problems": scene["sub_problems"]})
        merged = _ask(client, "integration", {"tools": docs["tools"]})
        system = STAGES["scaling"].replace("{ops}", scaling_ops(config.scaling.to_dict()))
        scaled = _ask(client, "scaling", {"tools": merged["tools"]}, system)
        deployed = _ask(
            client,
            "deployment",
            {
                "question": scene["question"],
                "sub_problems": scene["sub_problems"],
                "tools": scaled["tools"],
                "distractors": scaled["distractors"],
                "assignment": merged["assignment"],
            },
        )
    except BadOutput as exc:
        return LLMCandidate(index, rejection=exc)
    tools = [_schema(t) for t in scaled["tools"] + scaled["distractors"]]
    record = {
        "messages": [{"role": "user", "content": scene["question"]}],
        "tools": tools,
        "codes": deployed["codes"],
        "unsolved_set": deployed["unsolved_set"],
        "answer": scene["final_answer"],
        "data_source": f"ftrl_gym.generation/openai:{client.config.model}",
        "split": config.split,
        "scenario": scenario,
        "solution": deployed["solution"],
    }
    meta = {
        "template": f"llm:{scene['question']}",
        "domains": [domain],
        "hops": len(deployed["solution"]),
        "sub_problems": len(scene["sub_problems"]),
        "tools": len(tools),
        "distractors": len(scaled["distractors"]),
    }
    return LLMCandidate(index, record, deployed["distractor_probes"], meta)


def generate_llm(
    config: GenerationConfig,
    llm: LLMConfig,
    sandbox: Sandbox | None = None,
    progress: Callable[[int], None] | None = None,
    client: ChatClient | None = None,
) -> tuple[dict[str, list[TaskRecord]], Summary]:
    """Run the LLM backend: ``config.n`` validated tasks per scenario.

    Candidates are built ``llm.concurrency`` at a time and validated in index order, so a cached
    run gives the very same records.

    Args:
        config: What to generate (rates, seed, split, scenarios, n).
        llm: The endpoint.
        sandbox: Where validation runs; a private one when None.
        progress: Called with 1 per accepted task.
        client: A ready client (tests read its request count); built from ``llm`` when None.

    Returns:
        Records per scenario and the summary (rejections by reason).

    Raises:
        GenerationError: The endpoint is unreachable, or too few candidates passed.
    """
    client = client or ChatClient(llm)
    summary, out = Summary(), {}
    with validation_sandbox(sandbox) as box, ThreadPoolExecutor(llm.concurrency) as pool:
        for scenario in config.scenarios:
            out[scenario] = _scenario_tasks(client, pool, scenario, config, box, summary, progress)
    return out, summary


def _scenario_tasks(
    client: ChatClient,
    pool: ThreadPoolExecutor,
    scenario: str,
    config: GenerationConfig,
    sandbox: Sandbox,
    summary: Summary,
    progress: Callable[[int], None] | None,
) -> list[TaskRecord]:
    """Build, validate and keep candidates of one scenario until ``config.n`` are accepted."""
    accepted: list[TaskRecord] = []
    limit, index = config.n * config.max_attempts_factor + 20, 0
    while len(accepted) < config.n and index < limit:
        batch = range(index, min(limit, index + config.n - len(accepted)))
        index = batch.stop
        for candidate in pool.map(
            lambda i: build_llm_candidate(client, scenario, i, config), batch
        ):
            if len(accepted) == config.n:
                break
            if candidate.rejection is not None:
                summary.rejected[candidate.rejection.reason] += 1
                continue
            verdict = validate(candidate.record or {}, sandbox, None, candidate.probes or [])
            if not verdict.ok:
                summary.rejected[verdict.reason or "invalid"] += 1
                continue
            record = TaskRecord.from_dict(candidate.record or {}, f"{scenario}[{candidate.index}]")
            summary.add(scenario, record, candidate.meta or {})
            accepted.append(record)
            if progress is not None:
                progress(1)
    if len(accepted) < config.n:
        raise GenerationError(
            f"only {len(accepted)} of {config.n} {scenario} candidates passed in {limit} "
            f"attempts; rejections: {dict(summary.rejected)}"
        )
    return accepted
