"""Hub ids work wherever a model path does, offline, from a Hub-layout cache built from the shipped SmolLM2.

``huggingface_hub`` reads ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` when it is imported, so every check
runs in a fresh interpreter with its own environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent_test_helpers import require

REPO_ID = "ftrl-test/SmolLM2-135M-Instruct"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face Hub cache holding SmolLM2 under ``REPO_ID`` at ``refs/main`` = ``COMMIT``."""
    require("torch", "transformers", "huggingface_hub")
    from ftrl_gym.agents.models import resolve_model

    source = Path(resolve_model("smollm2"))
    cache = tmp_path_factory.mktemp("hub")
    repo = cache / ("models--" + REPO_ID.replace("/", "--"))
    shutil.copytree(source, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


def _python(code: str, cache: Path, offline: bool, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    env["HF_HUB_CACHE"] = str(cache)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
        check=False,
    )


def test_a_hub_id_resolves_to_its_cached_snapshot_offline(hub_cache: Path, tmp_path: Path) -> None:
    code = (
        "from ftrl_gym.agents.models import resolve_model;"
        f"print(resolve_model({REPO_ID!r}));"
        f"print(resolve_model({REPO_ID + '@main'!r}))"
    )
    out = _python(code, hub_cache, offline=True, cwd=tmp_path)
    snapshot = str(hub_cache / ("models--" + REPO_ID.replace("/", "--")) / "snapshots" / COMMIT)
    assert out.stdout.split() == [snapshot, snapshot], out.stderr[-2000:]


def test_an_uncached_hub_id_offline_is_one_clear_error(hub_cache: Path, tmp_path: Path) -> None:
    code = (
        "from ftrl_gym.agents.models import resolve_model\n"
        "from ftrl_gym.errors import AgentError\n"
        "try:\n    resolve_model('Qwen/Qwen2.5-7B-Instruct')\n"
        "except AgentError as exc:\n    print(exc)\n"
    )
    out = _python(code, hub_cache, offline=True, cwd=tmp_path)
    assert out.stdout.strip() == (
        "model 'Qwen/Qwen2.5-7B-Instruct': HF_HUB_OFFLINE is set and the Hub cache has no copy; "
        "download it once online (hf download Qwen/Qwen2.5-7B-Instruct) or pass a local folder"
    ), out.stderr[-2000:]


@pytest.mark.slow
def test_a_model_agent_loads_a_hub_id_and_leaves_hf_hub_offline_alone(
    hub_cache: Path, tmp_path: Path
) -> None:
    code = (
        "import json, os\n"
        "from ftrl_gym.agents.hf_agent import HFAgent\n"
        f"agent = HFAgent(model={REPO_ID!r}, max_new_tokens=8)\n"
        "text = agent.act([{'role': 'user', 'content': 'Say hi.'}], [])\n"
        "print(json.dumps({'text': text, 'offline': os.environ.get('HF_HUB_OFFLINE')}))\n"
    )
    out = _python(code, hub_cache, offline=False, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["text"].strip()
    assert result["offline"] is None


@pytest.mark.slow
def test_ftrl_gym_eval_takes_a_hub_id(hub_cache: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from ftrl_gym.cli import main;"
        f"sys.exit(main(['eval', '--agent', 'hf', '--model', {REPO_ID!r}, '--env', 'FTRL-SingleHop-v0',"
        f" '--episodes', '1', '--max-tokens', '16', '--out', {str(tmp_path / 'eval')!r}]))"
    )
    out = _python(code, hub_cache, offline=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["turns"] >= 1
