"""SFT warm start: oracle turns are the only tokens in the loss, and cloning them lowers their NLL."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import torch
from training_helpers import saved_activation_bytes, tiny_model

from ftrl_gym.agents.baselines import format_tool_calls
from ftrl_gym.agents.training.config import build_config
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.rollout import EnvPool, TokenRenderer
from ftrl_gym.agents.training.sft import nll_loss, oracle_episode, run_sft, sft_policy

WEATHER_TASKS = Path(__file__).parents[1] / "data" / "tasks.jsonl"


def test_oracle_episode_trains_on_the_oracle_turns_only(tokenizer) -> None:
    renderer = TokenRenderer(tokenizer)
    pool = EnvPool(max_turns=5, reward="solve_f1", tasks=str(WEATHER_TASKS))
    try:
        env = pool.get("FTRL-Custom-v0", 1)[0]
        episode = oracle_episode(env, 0, renderer)
        task = env.unwrapped.task
    finally:
        pool.close()
    trained = [t for t, m in zip(episode.token_ids, episode.loss_mask) if m]
    expected = (
        renderer.encode(format_tool_calls(task.solution[0]))
        + [renderer.eos_id]
        + renderer.encode(f"The answer is {task.answer}.")
        + [renderer.eos_id]
    )
    assert trained == expected
    assert episode.metrics["solve_f1"] == 1.0


def _sft_config(**overrides: Any):
    """SFT on the three weather tasks, all in one batch of 3, at a learning rate a tiny model feels."""
    settings = {
        "env_ids": ["FTRL-Custom-v0"],
        "tasks": str(WEATHER_TASKS),
        "sft_tasks": 3,
        "sft_batch_size": 3,
        "sft_lr": 3e-3,
        "torch_threads": 1,
        **overrides,
    }
    return build_config(overrides=settings)


def _oracle_episodes(tokenizer) -> list:
    renderer = TokenRenderer(tokenizer)
    pool = EnvPool(max_turns=5, reward="solve_f1", tasks=str(WEATHER_TASKS))
    try:
        return [oracle_episode(pool.get("FTRL-Custom-v0", 1)[0], i, renderer) for i in range(3)]
    finally:
        pool.close()


def test_sft_lowers_the_nll_of_oracle_turns(tokenizer, tmp_path: Path) -> None:
    config = _sft_config(sft_epochs=4, sft_micro_batch_size=3)
    policy = Policy(tiny_model(tokenizer), tokenizer)
    episodes = _oracle_episodes(tokenizer)
    with torch.no_grad():
        before = float(nll_loss(policy, episodes))
    saved = run_sft(config, tmp_path, policy=policy, progress=False)
    with torch.no_grad():
        after = float(nll_loss(policy, episodes))
    assert before > 10.0  # about ln(49152) = 10.8 for an untrained model
    assert after < before - 1.0
    assert (saved / "config.json").is_file() and (tmp_path / "metrics.jsonl").read_text().count(
        "\n"
    ) == 4


def test_sft_micro_batches_change_memory_not_the_update(tokenizer, tmp_path: Path) -> None:
    """Token-share accumulation: one trajectory per pass gives the update of all three at once."""
    base = tiny_model(tokenizer)
    weights = {}
    for micro in (1, 3):
        config = _sft_config(sft_epochs=1, sft_micro_batch_size=micro)
        policy = Policy(copy.deepcopy(base), tokenizer)
        run_sft(config, tmp_path / str(micro), policy=policy, progress=False)
        weights[micro] = {k: v.clone() for k, v in policy.model.state_dict().items()}
    moved = max(float((weights[1][k] - base.state_dict()[k]).abs().max()) for k in weights[1])
    assert moved > 1e-3
    # Adam's first step is about lr * sign(gradient), so a gradient within float noise of 0 may flip:
    # allow 1e-4 (lr / 30) where the weights moved by about lr = 3e-3.
    for name, tensor in weights[1].items():
        torch.testing.assert_close(tensor, weights[3][name], atol=1e-4, rtol=0.0)


def test_sft_recomputes_layers_when_asked_with_the_same_update(tokenizer, tmp_path: Path) -> None:
    folder = tmp_path / "start"
    base = tiny_model(tokenizer)
    base.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    episodes = _oracle_episodes(tokenizer)
    saved, weights = {}, {}
    for checkpointing in (False, True):
        config = _sft_config(
            sft_epochs=1, model=str(folder), activation_checkpointing=checkpointing
        )
        policy = sft_policy(config)
        saved[checkpointing] = saved_activation_bytes(
            policy.model, functools.partial(nll_loss, policy, episodes)
        )
        run_sft(config, tmp_path / str(checkpointing), policy=policy, progress=False)
        weights[checkpointing] = policy.model.state_dict()
    # the 2 layers keep only their inputs: a fraction of what the full forward pass keeps
    assert saved[True] < saved[False] / 3
    start = base.state_dict()
    moved = max(float((weights[False][k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-3
    for name, tensor in weights[False].items():
        torch.testing.assert_close(weights[True][name], tensor, atol=1e-5, rtol=0.0)
