"""The LLM backend: the five stages as prompts to any OpenAI-compatible endpoint."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ftrl_gym.errors import GenerationError
from ftrl_gym.generation.funnel import Funnel
from ftrl_gym.generation.llm_client import ChatClient, LLMConfig, RequestTimedOut
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

__all__ = ["ChatClient", "LLMCandidate", "LLMConfig", "build_llm_candidate", "generate_llm"]


@dataclass
class LLMCandidate:
    """A candidate from the model, or the reason it was rejected before validation."""

    index: int
    record: dict[str, Any] | None = None
    probes: list[dict[str, Any]] | None = None
    meta: dict[str, Any] | None = None
    rejection: BadOutput | None = None
    stage: str | None = None
    """The stage that rejected the candidate."""


class _StageFailed(Exception):
    """A stage's answer was unusable; carries the stage and the rejection."""

    def __init__(self, stage: str, rejection: BadOutput) -> None:
        super().__init__(str(rejection))
        self.stage, self.rejection = stage, rejection


def _ask(
    client: ChatClient, stage: str, context: dict[str, Any], system: str | None = None
) -> dict[str, Any]:
    """Run one stage: prompt, decode, check the shape; an unusable answer raises ``_StageFailed``."""
    try:
        reply = client.complete(stage, system or STAGES[stage], user_message(stage, context))
        if reply.finish_reason == "length":
            raise BadOutput(
                "truncated",
                f"the answer reached max_tokens={client.config.max_tokens[stage]} "
                f"after {len(reply.content)} characters, ending {reply.content[-40:]!r}; "
                f"raise --max-tokens {stage}=N",
            )
        value = parse_json(reply.content)
        check_shape(value, SHAPES[stage], stage)
    except RequestTimedOut as exc:
        raise _StageFailed(stage, BadOutput("timeout", str(exc))) from None
    except BadOutput as exc:
        raise _StageFailed(stage, exc) from None
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
    except _StageFailed as exc:
        return LLMCandidate(index, rejection=exc.rejection, stage=exc.stage)
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
    progress: Callable[[str], None] | None = None,
    client: ChatClient | None = None,
    funnel: Funnel | None = None,
) -> tuple[dict[str, list[TaskRecord]], Summary]:
    """Run the LLM backend: ``config.n`` validated tasks per scenario.

    Candidates are built ``llm.concurrency`` at a time and validated in index order, so a cached
    run gives the very same records. Every scenario is tried even when an earlier one fell short.

    Args:
        config: What to generate (rates, seed, split, scenarios, n).
        llm: The endpoint and the bounds of each request.
        sandbox: Where validation runs; a private one when None.
        progress: Called with ``"request"`` before each HTTP request, and with ``"rejected"`` or
            ``"accepted"`` for each candidate.
        client: A ready client (tests read its request count); built from ``llm`` when None.
        funnel: Filled with every candidate's fate, stage by stage (read it after a failure too).

    Returns:
        Records per scenario and the summary (rejections by reason).

    Raises:
        GenerationError: The endpoint is unreachable, refused a request or kept failing, or a
            scenario got fewer than ``n`` tasks (the message gives the funnel).
    """
    client = client or ChatClient(llm)
    client.listener = progress
    funnel = funnel if funnel is not None else Funnel()
    summary, out = Summary(), {}
    with validation_sandbox(sandbox) as box, ThreadPoolExecutor(llm.concurrency) as pool:
        for scenario in config.scenarios:
            build = _builder(client, pool, scenario, config, llm)
            out[scenario] = _scenario_tasks(build, scenario, config, box, summary, funnel, progress)
    short = {s: len(tasks) for s, tasks in out.items() if len(tasks) < config.n}
    if short:
        raise GenerationError(
            "; ".join(
                f"only {got} of {config.n} {s} tasks passed in {funnel.candidates(s)} candidates "
                f"({funnel.one_line(s)})"
                for s, got in short.items()
            )
        )
    return out, summary


def _builder(
    client: ChatClient,
    pool: ThreadPoolExecutor,
    scenario: str,
    config: GenerationConfig,
    llm: LLMConfig,
) -> Callable[[int], Iterator[LLMCandidate]]:
    """Return ``build(needed)``: the scenario's next candidates, built ``llm.concurrency`` at a time, in order.

    Each call builds ``max(needed, concurrency)`` candidates (fewer at the limit); candidates past
    the ``n``-th acceptance are discarded, but their answers stay in the cache.
    """
    limit = llm.max_candidates or config.n * config.max_attempts_factor + 20
    start = 0

    def build(needed: int) -> Iterator[LLMCandidate]:
        nonlocal start
        batch = range(start, min(limit, start + max(needed, llm.concurrency)))
        start = batch.stop
        return pool.map(lambda i: build_llm_candidate(client, scenario, i, config), batch)

    return build


def _scenario_tasks(
    build: Callable[[int], Iterator[LLMCandidate]],
    scenario: str,
    config: GenerationConfig,
    sandbox: Sandbox,
    summary: Summary,
    funnel: Funnel,
    progress: Callable[[str], None] | None,
) -> list[TaskRecord]:
    """Build, validate and keep candidates of one scenario until ``config.n`` are accepted or the limit is hit."""
    accepted: list[TaskRecord] = []
    while len(accepted) < config.n:
        candidates = list(build(config.n - len(accepted)))
        if not candidates:
            break
        for candidate in candidates:
            if len(accepted) == config.n:
                break
            stage, reason, detail = _verdict(candidate, sandbox)
            if reason is not None:
                summary.rejected[reason] += 1
                funnel.reject(scenario, stage, reason, detail)
                _tell(progress, "rejected")
                continue
            record = TaskRecord.from_dict(candidate.record or {}, f"{scenario}[{candidate.index}]")
            summary.add(scenario, record, candidate.meta or {})
            funnel.accept(scenario)
            accepted.append(record)
            _tell(progress, "accepted")
    return accepted


def _verdict(candidate: LLMCandidate, sandbox: Sandbox) -> tuple[str, str | None, str]:
    """Return (stage, rejection reason or None, detail) of a built candidate, validating it when it got that far."""
    if candidate.rejection is not None:
        return candidate.stage or "scene", candidate.rejection.reason, candidate.rejection.detail
    verdict = validate(candidate.record or {}, sandbox, None, candidate.probes or [])
    return "validation", None if verdict.ok else verdict.reason or "invalid", verdict.detail


def _tell(progress: Callable[[str], None] | None, event: str) -> None:
    if progress is not None:
        progress(event)
