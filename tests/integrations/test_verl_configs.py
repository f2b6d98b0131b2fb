"""verl: the paper's GRPO and Reinforce++ recipes compose with verl's trainer config and pass its checks."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("verl", reason="verl is installed in a side venv: .ci/verl_venv.sh")

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from verl.trainer.ppo.core_algos import get_adv_estimator_fn
from verl.trainer.ppo.reward import get_custom_reward_fn
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config

import ftrl_gym.integrations.verl as ftrl_verl

CONFIGS = Path(ftrl_verl.__file__).parent / "verl_configs"


def recipe(name: str, *overrides: str):
    """Compose a recipe as ``main_ppo --config-path CONFIGS --config-name name`` does."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        config = compose(name, overrides=["actor_rollout_ref.model.path=/models/any", *overrides])
    OmegaConf.resolve(config)
    return config


@pytest.mark.parametrize(
    ("name", "estimator"), [("ftrl_grpo", "grpo"), ("ftrl_reinforce_pp", "reinforce_plus_plus")]
)
def test_recipe_holds_the_papers_hyper_parameters_and_passes_verl_checks(name, estimator):
    config = recipe(name)
    actor, rollout = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
    assert config.algorithm.adv_estimator == estimator
    assert get_adv_estimator_fn(estimator) is not None
    assert (actor.use_kl_loss, actor.kl_loss_type, actor.kl_loss_coef) == (
        True,
        "low_var_kl",
        0.001,
    )
    assert (actor.entropy_coeff, actor.optim.lr, actor.ppo_mini_batch_size) == (0.001, 1e-6, 32)
    assert (rollout.n, config.data.train_batch_size, config.trainer.total_epochs) == (16, 512, 3)
    assert rollout.response_length == config.data.max_response_length == 1024
    assert config.algorithm.use_kl_in_reward is False
    validate_config(
        config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )
    assert need_critic(config) is False and need_reference_policy(config) is True
    score = get_custom_reward_fn(config)  # verl loads compute_score from the pkg:// path
    empty_task = {"tools": "[]", "codes": "{}", "unsolved_set": "{}", "state": "null"}
    bad = "<tool_call>not json</tool_call>"
    assert score("ftrl_gym/x", bad, "", empty_task)["score"] == -0.3  # SPEC 3 format error


def test_reasoning_mode_and_episode_rows_are_overrides():
    config = recipe(
        "ftrl_grpo",
        "data.max_response_length=8192",
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={CONFIGS / 'agent_loop.yaml'}",
    )
    assert config.actor_rollout_ref.rollout.response_length == 8192
    entries = OmegaConf.load(config.actor_rollout_ref.rollout.agent.agent_loop_config_path)
    assert [(e.name, e._target_) for e in entries] == [
        ("ftrl_agent", "ftrl_gym.integrations.verl_agent_loop.FTRLAgentLoop")
    ]
