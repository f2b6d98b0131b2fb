"""``make_agent``: ``--agent-kwargs`` reach the built-in model agents, and a wrong one is named."""

from __future__ import annotations

import pytest

from ftrl_gym.agents.factory import AgentSettings, make_agent


def test_agent_kwargs_are_added_to_a_built_in_agent_and_override_its_settings() -> None:
    settings = AgentSettings(
        model="m", base_url="http://127.0.0.1:9/v1", max_tokens=32,
        agent_kwargs={"max_retries": 1, "max_tokens": 7},
    )
    agent = make_agent("openai", settings)
    assert (agent.max_retries, agent.max_tokens, agent.max_concurrency) == (1, 7, 8)


def test_an_agent_kwarg_the_agent_does_not_take_is_a_clear_error() -> None:
    settings = AgentSettings(
        model="m", base_url="http://127.0.0.1:9/v1", agent_kwargs={"max_model_len": 8}
    )
    expected = (
        r"--agent openai: --agent-kwargs \{'max_model_len': 8\} rejected "
        r"\(OpenAIAgent takes no max_model_len\)"
    )
    with pytest.raises(ValueError, match=expected):
        make_agent("openai", settings)


def test_the_baselines_run_beside_a_model_agent_whatever_its_kwargs() -> None:
    settings = AgentSettings(seed=3, agent_kwargs={"max_model_len": 8192})
    assert type(make_agent("oracle", settings)).__name__ == "OracleAgent"
    assert make_agent("random", settings).name.startswith("random")
