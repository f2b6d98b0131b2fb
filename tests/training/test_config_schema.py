"""TrainConfig's groups, field docs, pydantic type checks, grouped YAML and the grouped ``--help``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from ftrl_gym.agents.training.config import ConfigError, TrainConfig, build_config, parse_overrides
from ftrl_gym.agents.training.config_schema import (
    FIELD_GROUPS,
    GROUP_TITLES,
    check_types,
    field_docs,
    flatten_groups,
    grouped_help,
)
from ftrl_gym.cli import main

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


def test_every_field_is_in_exactly_one_group_and_every_group_is_titled() -> None:
    listed = [name for names in FIELD_GROUPS.values() for name in names]
    assert sorted(listed) == sorted(FIELDS), "place each TrainConfig field in one FIELD_GROUPS entry"
    assert list(FIELD_GROUPS) == list(GROUP_TITLES)
    assert {"rl", "sampling", "sft", "evaluation", "distributed", "logging"} <= set(GROUP_TITLES)


def test_every_field_is_documented_once_in_the_class_body() -> None:
    docs = field_docs(TrainConfig)
    assert sorted(docs) == sorted(FIELDS)
    assert docs["lr"] == "Adam learning rate of the RL phase (its peak, with a warmup or schedule)."
    assert docs["normalize_by_std"] == "GRPO: divide group-centred scores by the group's std."


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("lr=abc", "lr='abc' is invalid: lr takes a number (default 1e-06)"),
        ("normalize_by_std=flase", "normalize_by_std='flase' is invalid: normalize_by_std takes true or false (default True)"),
        ("rollouts_per_prompt=2.5", "rollouts_per_prompt=2.5 is invalid: rollouts_per_prompt takes a whole number (default 16)"),
        ("kl_coef=true", "kl_coef=True is invalid: kl_coef takes a number (default 0.001)"),
        ("report_to={}", "report_to={} is invalid: report_to takes a list (a,b or [a, b]) (default [])"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_field_and_what_it_takes(
    setting: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["train", "grpo", "--set", setting, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"ftrl-gym train: error: {message}\n"


def test_several_bad_values_share_the_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        check_types(TrainConfig, {"lr": "abc", "seed": "x"})
    assert str(caught.value) == (
        "lr='abc' is invalid: lr takes a number (default 1e-06); "
        "seed='x' is invalid: seed takes a whole number (default 0)"
    )


def test_text_forms_of_numbers_and_booleans_are_read() -> None:
    config = build_config(overrides=parse_overrides(
        ["normalize_by_std=false", "skip_zero_advantage=yes", "lr=1e-6", "epochs=2.0", "model=7"]
    ))
    assert (config.normalize_by_std, config.skip_zero_advantage, config.lr, config.epochs, config.model) == (
        False, True, 1e-6, 2, "7",
    )
    assert isinstance(config.epochs, int)


def test_yaml_scientific_notation_and_grouped_sections(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(
        "seed: 4\n"
        "rl:\n  lr: 1e-6\n  normalize_by_std: false\n"
        "sampling:\n  temperature: 7.5e-1\n"
        "sft:\n  sft_lr: 2E-5\n"
        "logging:\n  report_to: [tensorboard]\n"
    )
    config = build_config(path=path, overrides=parse_overrides(["rl.kl_coef=0"]))
    assert (config.seed, config.lr, config.normalize_by_std, config.temperature) == (4, 1e-6, False, 0.75)
    assert (config.sft_lr, config.report_to, config.kl_coef) == (2e-5, ["tensorboard"], 0.0)
    assert isinstance(config.lr, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rl": {"temperature": 1.0}}, "f.yaml: temperature belongs to group sampling, not rl"),
        ({"rl": 3}, "f.yaml: section rl must map its settings to values, got 3"),
        ({"optim.lr": 1}, "f.yaml: optim.lr names no group: use one of run, rl, sampling"),
    ],
)
def test_misplaced_grouped_settings_say_where_they_belong(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        flatten_groups(data, "f.yaml")
    assert message in str(caught.value)


def test_help_lists_every_field_under_its_group_with_its_doc(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert grouped_help(TrainConfig) in text
    headings = [text.index(f"\n{group}: {title}\n") for group, title in GROUP_TITLES.items()]
    assert headings == sorted(headings)
    for group, names in FIELD_GROUPS.items():
        start = text.index(f"\n{group}: ")
        for name in names:
            assert text.index(f"\n  {name} (", start) > start
    assert (
        "  lr (a number, default 1e-06)\n"
        "      Adam learning rate of the RL phase (its peak, with a warmup or schedule).\n"
    ) in text
    assert "other:" not in text


def test_the_grouped_yaml_example_in_docs_training_builds(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "docs" / "training.md").read_text()
    section = text.split("### Settings: groups, files, checks", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    assert example
    path = tmp_path / "example.yaml"
    path.write_text(example.group(1))
    config = build_config(path=path)
    assert (config.seed, config.lr, config.normalize_by_std, config.temperature) == (1, 1e-6, False, 0.7)
    assert config.report_to == ["tensorboard", "wandb"]
