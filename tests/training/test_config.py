"""TrainConfig: SPEC 7 defaults, presets, file and --set layering, fix-it messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftrl_gym.agents.training.config import (
    PRESETS,
    ConfigError,
    TrainConfig,
    build_config,
    parse_overrides,
)


def test_defaults_are_spec_7() -> None:
    config = TrainConfig()
    assert (config.lr, config.kl_coef, config.entropy_coef, config.rollouts_per_prompt) == (
        1e-6,
        0.001,
        0.001,
        16,
    )
    assert (
        config.prompts_per_step,
        config.mini_batch_size,
        config.max_new_tokens,
        config.epochs,
    ) == (512, 32, 1024, 3)
    assert (config.reward, config.scheme) == ("solve_f1", "turn")


def test_every_preset_builds_and_demo_is_cpu_long_cut_short() -> None:
    configs = {name: build_config(name) for name in PRESETS}
    long, demo = configs["cpu_long"].to_dict(), configs["demo"].to_dict()
    differ = {k: (long[k], demo[k]) for k in long if long[k] != demo[k]}
    assert differ == {
        "prompts_per_step": (16, 4),
        "max_steps": (6, 2),
        "eval_episodes": (15, 4),
        "rl_algorithms": (["grpo", "reinforce_pp"], ["grpo"]),
        "kl_coef": (0.001, 0.0),
        "vllm_kv_cache_gib": (2.0, 0.5),
        "activation_checkpointing": (False, True),
        "dtype": ("float32", "bfloat16"),
    }


def test_cpu_seeds_is_a_steadier_longer_cpu_long() -> None:
    long, seeds = build_config("cpu_long"), build_config("cpu_seeds")
    assert seeds.sft_tasks * seeds.sft_epochs > long.sft_tasks * long.sft_epochs  # data, updates
    assert (seeds.lr, seeds.lr_warmup_steps, seeds.lr_schedule) == (1e-5, 2, "cosine")
    assert seeds.lr < long.lr and seeds.max_steps > long.max_steps
    # Repeats are charged, failed calls are not: charging them taught seed 0 to stop calling.
    assert seeds.dynamic_sampling and (seeds.error_call_charge, seeds.duplicate_call_charge) == (0.0, 0.05)
    # Selection on 25 held-out tasks x 4 scenarios = 100 validation episodes; 50 x 4 test tasks.
    assert seeds.rl_eval_model == "best" and 4 * seeds.val_tasks == 100
    assert 4 * seeds.eval_episodes == 200


def test_cpu_seeds12_is_cpu_seeds_with_twelve_steps() -> None:
    seeds, twelve = build_config("cpu_seeds").to_dict(), build_config("cpu_seeds12").to_dict()
    assert {k: (seeds[k], twelve[k]) for k in seeds if seeds[k] != twelve[k]} == {"max_steps": (8, 12)}


def test_file_then_overrides_win_over_the_preset(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("lr: 3.0e-6\nrollouts_per_prompt: 8\n")
    config = build_config(
        "cpu", path, parse_overrides(["rollouts_per_prompt=6", "env_ids=[FTRL-SingleHop-v0]"])
    )
    assert (
        config.lr == 3e-6
        and config.rollouts_per_prompt == 6
        and config.env_ids == ["FTRL-SingleHop-v0"]
    )
    assert config.max_steps == 3  # from the cpu preset
    json_path = tmp_path / "train.json"
    json_path.write_text(json.dumps({"algorithm": "reinforce_pp", "lr": 1}))
    assert build_config(path=json_path).lr == 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algorithm": "ppo"}, "algorithm='ppo' is unknown: use one of grpo, reinforce_pp"),
        (
            {"rollouts_per_prompt": 1},
            "GRPO compares responses to one prompt: set rollouts_per_prompt >= 2",
        ),
        ({"mini_batch_size": 600}, "lower mini_batch_size or raise prompts_per_step"),
        ({"env_ids": ["FTRL-Custom-v0"]}, "FTRL-Custom-v0 needs a task file: set tasks=PATH.jsonl"),
        ({"learning_rate": 1e-6}, "unknown setting(s): learning_rate"),
        ({"max_new_tokens": 5000}, "max_new_tokens must be below max_context_tokens"),
        (
            {"episode_reward": "outcome"},
            "episode_reward=outcome scores whole episodes: set scheme=episode",
        ),
        (
            {"episode_reward": "final"},
            "episode_reward='final' is unknown: use one of turn, outcome",
        ),
    ],
)
def test_invalid_settings_say_how_to_fix_them(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        build_config(overrides=overrides)
    assert message in str(caught.value)


def test_set_needs_key_equals_value() -> None:
    with pytest.raises(ConfigError, match="--set expects key=value"):
        parse_overrides(["lr"])
    assert parse_overrides(["lr=1e-6", "normalize_by_std=false", "model=smollm2"]) == {
        "lr": 1e-6,
        "normalize_by_std": False,
        "model": "smollm2",
    }


def test_train_cli_reports_bad_settings_with_exit_status_2(capsys) -> None:
    from ftrl_gym.cli import main

    assert main(["train", "reinforce_pp", "--preset", "cpu", "--set", "lr=-1"]) == 2
    assert "ftrl-gym train: error: lr must be positive, got -1.0" in capsys.readouterr().err


def test_top_p_below_one_is_refused_for_rl():
    from ftrl_gym.agents.training.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="top_p=0.9 is refused: the learner scores the full"):
        build_config(overrides={"top_p": 0.9})


def test_truncated_importance_sampling_needs_recomputed_logprobs():
    from ftrl_gym.agents.training.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="set recompute_old_logprobs=true as well"):
        build_config(overrides={"tis_cap": 2.0})
    assert build_config(overrides={"tis_cap": 2.0, "recompute_old_logprobs": True}).tis_cap == 2.0
    with pytest.raises(ConfigError, match="dual_clip=1.0 must be above 1"):
        build_config(overrides={"dual_clip": 1.0})
