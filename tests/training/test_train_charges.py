"""Training envs take the run's error and duplicate call charges; the evaluation's never do."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_helpers import ScriptedGenerator, tiny_model

from ftrl_gym.agents.training.config import ConfigError, build_config
from ftrl_gym.agents.training.policy import Policy
from ftrl_gym.agents.training.rollout import train_env_pool
from ftrl_gym.agents.training.trainer import RLTrainer
from ftrl_gym.envs.pool import EnvPool

WEATHER_TASKS = Path(__file__).parents[1] / "data" / "tasks.jsonl"
BAD_CALL = '<tool_call>{"name": "get_weather", "arguments": {"town": "Paris"}}</tool_call>'
"""A call with an argument the tool does not take: its result is an error."""
GOOD_CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
"""The call that solves task 0 (Paris: "Sunny, 21")."""


def _config(**overrides):
    settings = {
        "env_ids": ["FTRL-Custom-v0"],
        "tasks": str(WEATHER_TASKS),
        "train_tasks": 1,
        "max_turns": 4,
        "prompts_per_step": 1,
        "mini_batch_size": 1,
        "rollouts_per_prompt": 2,
        "max_new_tokens": 48,
        "max_context_tokens": 1024,
        "kl_coef": 0.0,
        "torch_threads": 1,
        "error_call_charge": 0.1,
        "duplicate_call_charge": 0.05,
        **overrides,
    }
    return build_config(overrides=settings)


def test_a_training_env_charges_a_failed_call_and_its_repeat() -> None:
    pool = train_env_pool(_config())
    try:
        env = pool.get("FTRL-Custom-v0", 1)[0]
        env.reset(seed=0, options={"task_index": 0})
        rewards = [env.step(BAD_CALL)[1], env.step(BAD_CALL)[1], env.step(GOOD_CALL)[1]]
    finally:
        pool.close()
    # SPEC 3 gives 0, 0, 2*1/(1+1) = 1; the error charge takes 0.1 off each failed call, the
    # duplicate charge 0.05 off the repeat.
    assert rewards == pytest.approx([-0.1, -0.15, 1.0])


def test_evaluation_pools_keep_spec_3() -> None:
    pool = EnvPool(4, split="test", tasks=str(WEATHER_TASKS))
    try:
        env = pool.get("FTRL-Custom-v0", 1)[0]
        env.reset(seed=0, options={"task_index": 0})
        assert [env.step(BAD_CALL)[1], env.step(BAD_CALL)[1]] == [0.0, 0.0]
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("charges", "score"),
    [({}, 0.0), ({"error_call_charge": 0.1, "duplicate_call_charge": 0.05}, -0.25)],
)
def test_the_trainer_scores_episodes_with_the_run_charges(
    tokenizer, tmp_path: Path, charges: dict, score: float
) -> None:
    config = _config(
        scheme="episode", **{"error_call_charge": 0.0, "duplicate_call_charge": 0.0, **charges}
    )
    trainer = RLTrainer(
        config, tmp_path, policy=Policy(tiny_model(tokenizer), tokenizer), progress=False
    )
    # Each episode: the bad call, the bad call again, then a reply with no call (0: no answer).
    script = [BAD_CALL, BAD_CALL, "I cannot tell."]
    trainer.backend.generator = ScriptedGenerator(tokenizer, lambda text, turn: script[turn])
    try:
        metrics = trainer.train_step()
    finally:
        trainer.close()
    # Turn rewards -0.1, -0.1 - 0.05 and 0 sum to -0.25 with charges; SPEC 3 gives 0 + 0 + 0.
    assert metrics["reward"] == pytest.approx(score)
    assert metrics["solve_f1"] == 0.0


def test_a_negative_charge_is_refused() -> None:
    with pytest.raises(ConfigError, match="error_call_charge must be 0 or more, got -0.1"):
        _config(error_call_charge=-0.1)
