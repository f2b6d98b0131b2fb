"""verl multi-turn: FTRLAgentLoop plays episodes through verl's own agent-loop and reward-loop code.

Needs verl (it pins ``transformers<5.11``): ``.ci/verl_venv.sh`` makes the side venv these tests run in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip("pandas", reason="verl tests need pandas: pip install 'ftrl-gym[verl]'")
pytest.importorskip("verl", reason="verl is installed in a side venv: .ci/verl_venv.sh")

import numpy as np
import ray
from hydra import compose, initialize_config_dir
from transformers import AutoTokenizer
from verl import DataProto
from verl.experimental.agent_loop.agent_loop import AgentLoopManager, DictConfigWrap
from verl.experimental.reward_loop import RewardLoopManager
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
from verl.workers.rollout.llm_server import LLMServerClient
from verl.workers.rollout.replica import TokenOutput
from verl.workers.rollout.router import get_router_handle

import ftrl_gym.integrations.verl as ftrl_verl
from agents.models import resolve_model
from ftrl_gym.integrations.verl_agent_loop import AGENT_NAME, FTRLAgentLoop
from ftrl_gym.integrations.verl_generator import TransformersTokenServer

ENV_ID = "FTRL-MultiHop-v0"
CONFIGS = Path(ftrl_verl.__file__).parent / "verl_configs"
VERL_CONFIGS = Path(__import__("verl").__file__).parent / "trainer" / "config"
PROMPT_LENGTH, RESPONSE_LENGTH, MAX_NEW_TOKENS = 1024, 192, 48


def trainer_config(model: str, **overrides: object):
    """verl's ``ppo_trainer`` config for a CPU rollout of FTRLAgentLoop scored by ``compute_score``."""
    settings = {
        "actor_rollout_ref.model.path": model,
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.prompt_length": PROMPT_LENGTH,
        "actor_rollout_ref.rollout.response_length": RESPONSE_LENGTH,
        "actor_rollout_ref.rollout.temperature": 0,
        "actor_rollout_ref.rollout.agent.num_workers": 1,
        "actor_rollout_ref.rollout.agent.default_agent_loop": AGENT_NAME,
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": str(CONFIGS / "agent_loop.yaml"),
        "actor_rollout_ref.rollout.multi_turn.max_assistant_turns": 3,
        "reward.num_workers": 1,
        "reward.custom_reward_function.path": ftrl_verl.__file__,
        "reward.custom_reward_function.name": "compute_score",
        "data.max_prompt_length": PROMPT_LENGTH,
        "data.dataloader_num_workers": 0,
        **overrides,
    }
    with initialize_config_dir(config_dir=str(VERL_CONFIGS), version_base=None):
        return compose("ppo_trainer", overrides=[f"{k}={v}" for k, v in settings.items()])


@pytest.fixture(scope="module")
def tasks():
    env = gym.make(ENV_ID, split="test")
    picked = env.unwrapped.tasks[:2]
    env.close()
    return picked


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model("smollm2"), local_files_only=True)


def split_runs(mask: list[int], ids: list[int]) -> list[tuple[int, list[int]]]:
    """Consecutive runs of equal mask values: ``[(mask value, ids), ...]``."""
    runs: list[tuple[int, list[int]]] = []
    for value, token in zip(mask, ids):
        if runs and runs[-1][0] == value:
            runs[-1][1].append(token)
        else:
            runs.append((value, [token]))
    return runs


def replay(task_index: int, turns: list[str]) -> tuple[list[float], dict]:
    """The env's rewards for these assistant turns, stepped afresh through ``gym.make``."""
    env = gym.make(ENV_ID, split="test", max_turns=3)
    try:
        env.reset(options={"task_index": task_index})
        rewards, info = [], {}
        for text in turns:
            _, reward, terminated, truncated, info = env.step(text)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        return rewards, info["metrics"]
    finally:
        env.close()


@pytest.mark.slow
def test_smollm2_episodes_through_verl_agent_and_reward_loops(tasks, tokenizer, tmp_path):
    """SmolLM2 on CPU behind verl's server client plays two episodes; verl's reward loop scores them."""
    model = resolve_model("smollm2")
    config = trainer_config(model)
    path = ftrl_verl.write_parquet(tasks, tmp_path / "episodes.parquet", agent_name=AGENT_NAME)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}})
    try:
        server = ray.remote(TransformersTokenServer).remote(model, MAX_NEW_TOKENS)
        client = LLMServerClient(config, get_router_handle({"cpu-0": server}))
        rewards = RewardLoopManager(config)
        manager = AgentLoopManager.create(
            config, client, reward_loop_worker_handles=rewards.reward_loop_worker_handles
        )
        dataset = RLHFDataset(str(path), tokenizer, config.data)
        batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
        output = manager.generate_sequences(batch)
    finally:
        ray.shutdown()

    assert len(output) == 2
    scores = output.batch["rm_scores"].sum(dim=1).tolist()
    for i, task in enumerate(tasks):
        width = int(output.batch["attention_mask"][i, PROMPT_LENGTH:].sum())
        ids = output.batch["responses"][i, :width].tolist()
        mask = output.batch["response_mask"][i, :width].tolist()
        runs = split_runs(mask, ids)
        turns = [tokenizer.decode(run, skip_special_tokens=True) for value, run in runs if value == 1]
        observations = [tokenizer.decode(run) for value, run in runs if value == 0]
        assert runs[0][0] == 1 and len(turns) == len(observations) + 1
        assert all("<tool_response>" in text for text in observations), observations
        turn_scores = list(output.non_tensor_batch["turn_scores"][i])
        episode = output.non_tensor_batch[ftrl_verl.EPISODE_KEY][i]
        expected_rewards, metrics = replay(i, turns)
        assert turn_scores == pytest.approx(expected_rewards)
        assert episode["return"] == pytest.approx(sum(expected_rewards))
        assert scores[i] == pytest.approx(metrics["solve_f1"])
        assert output.non_tensor_batch["num_calls"][i] == metrics["calls"]
        prompt = tokenizer.decode(output.batch["prompts"][i][output.batch["attention_mask"][i, :PROMPT_LENGTH].bool()])
        assert task.messages[0]["content"] in prompt and '"name":' in prompt
    print("turns:", [len(t) for t in output.non_tensor_batch["turn_scores"]], "scores:", scores)
