"""Clear errors for a bad model path and an unreachable endpoint, and the offline model files."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from ftrl_gym.agents.models import resolve_model, smollm2_gguf_path
from ftrl_gym.errors import AgentError


def test_bad_model_paths(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="model path '/no/such/dir' does not exist"):
        resolve_model("/no/such/dir")
    with pytest.raises(AgentError, match="is not a transformers model folder"):
        resolve_model(str(tmp_path))


def test_the_smollm2_gguf_ships_in_its_wheel() -> None:
    pytest.importorskip("gguf", reason="the hf extra is not installed")
    try:
        path = smollm2_gguf_path()
    except AgentError as exc:
        pytest.skip(str(exc))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_is_a_clear_agent_error() -> None:
    pytest.importorskip("openai", reason="the openai extra is not installed")
    from ftrl_gym.agents.openai_agent import OpenAIAgent

    url = f"http://127.0.0.1:{_closed_port()}/v1"
    start = time.monotonic()
    with pytest.raises(AgentError, match=rf"cannot reach the OpenAI-compatible endpoint {url} after 2 "
                                         r"attempts .*is the server running"):
        OpenAIAgent(base_url=url, max_retries=1, backoff_s=0.01)
    assert time.monotonic() - start < 20


def test_openai_without_key_or_url_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openai", reason="the openai extra is not installed")
    from ftrl_gym.agents.openai_agent import OpenAIAgent

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(AgentError, match="needs OPENAI_API_KEY for OpenAI, or base_url="):
        OpenAIAgent(model="gpt-x")
