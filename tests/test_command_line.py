"""The ``ftrl-gym`` dispatcher: ``--version``, one-line user errors with exit status 2, and reruns into
a run folder made with other settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftrl_gym.cli import main, package_version
from ftrl_gym.run_settings import SETTINGS_FILE, RunSettingsError, claim_run_folder, differing_settings


def _exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture) -> None:
    assert _exit_status(["--version"]) == 0
    assert capsys.readouterr().out == f"ftrl-gym {package_version()}\n"
    assert package_version() == "0.1.0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "ftrl-gym: error: the following arguments are required: command"),
        (["eval", "--split", "dev"], "ftrl-gym eval: error: argument --split: invalid choice: 'dev'"),
        (["eval", "--env", "FTRL-SingleHopp-v0"], "Did you mean 'FTRL-SingleHop-v0'?"),
        (["eval", "--agent-kwargs", "{bad"], "ftrl-gym eval: error: --agent-kwargs must be JSON, got '{bad'"),
        (["train", "dance"], "ftrl-gym train: error: argument mode: invalid choice: 'dance'"),
        (["train", "grpo", "--set", "lr=-1"], "ftrl-gym train: error: lr must be positive, got -1.0"),
        (["train", "sft", "--set", "lrr=1"], "unknown setting(s): lrr (did you mean ['lr']?)"),
        (["train", "grpo", "--config", "/no/such.yaml"], "No such file or directory: '/no/such.yaml'"),
        (["train", "pipeline", "--ray"], "ftrl-gym train: error: --ray runs the RL modes only, not pipeline"),
        (["train", "sft", "--set", "model=/no/such/model"], "model path '/no/such/model' does not exist"),
        (["episodes", "/no/such.jsonl"], "ftrl-gym episodes: error: cannot read /no/such.jsonl"),
        (["episodes", "x.jsonl", "--limit", "a"], "ftrl-gym episodes: error: argument --limit: invalid int"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = ["--out", str(tmp_path)] if argv and argv[0] in ("eval", "train") else []
    assert _exit_status([*argv, *out]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert message in err


def test_a_bad_yaml_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("lr: [1\n")
    assert _exit_status(["train", "grpo", "--config", str(config), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"{config} is not valid YAML" in err


def test_a_missing_extra_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("lr: 0.1\n")
    monkeypatch.setitem(sys.modules, "yaml", None)
    assert _exit_status(["train", "grpo", "--config", str(config), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "ftrl-gym train: error: the yaml module is missing: pip install 'ftrl-gym[train]'\n"
    )


def test_a_missing_extra_of_a_model_agent_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    argv = ["eval", "--agent", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
            "--out", str(tmp_path), "--no-progress"]
    assert _exit_status(argv) == 2
    assert capsys.readouterr().err == (
        "ftrl-gym eval: error: the openai module is missing: pip install 'ftrl-gym[openai]'\n"
    )


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ftrl_gym.cli", "train", "grpo", "--set", "lr=-1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "ftrl-gym train: error: lr must be positive, got -1.0\n"


def test_eval_rerun_with_other_settings_refuses_and_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["eval", "--env", "FTRL-SingleHop-v0", "--episodes", "1", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    first = (tmp_path / "results.jsonl").read_text()
    capsys.readouterr()
    assert main([*argv, "--seed", "1", "--max-turns", "3"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ftrl-gym eval: error: {tmp_path} holds results made with other settings "
        "(max_turns: 20 -> 3; seed: 0 -> 1): pass --overwrite to replace them or choose another --out\n"
    )
    assert (tmp_path / "results.jsonl").read_text() == first
    assert main([*argv, "--episodes", "2"]) == 0
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2
    assert main([*argv, "--seed", "1", "--overwrite"]) == 0
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1
    assert json.loads((tmp_path / SETTINGS_FILE).read_text())["seed"] == 1


def test_train_rerun_with_other_settings_refuses_and_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from ftrl_gym.agents.training.cli import run_settings
    from ftrl_gym.agents.training.config import build_config

    claim_run_folder(tmp_path, run_settings("grpo", build_config("cpu")))
    argv = ["train", "grpo", "--preset", "cpu", "--out", str(tmp_path), "--no-progress"]
    assert main([*argv, "--set", "lr=0.5", "--set", "seed=3"]) == 2
    err = capsys.readouterr().err
    assert "holds results made with other settings (lr: 1e-05 -> 0.5; seed: 0 -> 3)" in err
    assert main(["train", "reinforce_pp", *argv[2:]]) == 2
    assert 'algorithm: "grpo" -> "reinforce_pp"; mode: "grpo" -> "reinforce_pp"' in capsys.readouterr().err


def test_a_pipeline_rerun_may_add_an_rl_stage_but_not_change_the_others(tmp_path: Path) -> None:
    from ftrl_gym.agents.training.cli import PIPELINE_MAY_CHANGE, run_settings
    from ftrl_gym.agents.training.config import build_config

    def settings(**changes: object) -> dict[str, object]:
        return run_settings("pipeline", build_config("cpu_seeds", None, dict(changes)))

    claim_run_folder(tmp_path, settings(rl_algorithms=["grpo"]))
    (tmp_path / "grpo").mkdir()
    claim_run_folder(tmp_path, settings(rl_algorithms=["grpo", "reinforce_pp"]), may_change=PIPELINE_MAY_CHANGE)
    assert (tmp_path / "grpo").is_dir()
    assert json.loads((tmp_path / SETTINGS_FILE).read_text())["rl_algorithms"] == ["grpo", "reinforce_pp"]
    with pytest.raises(RunSettingsError, match=r"\(seed: 0 -> 1\)"):
        claim_run_folder(tmp_path, settings(rl_algorithms=["grpo"], seed=1), may_change=PIPELINE_MAY_CHANGE)


def test_overwrite_clears_only_the_named_results(tmp_path: Path) -> None:
    claim_run_folder(tmp_path, {"seed": 0})
    (tmp_path / "results.jsonl").write_text("old\n")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(RunSettingsError, match=r"\(seed: 0 -> 1\)"):
        claim_run_folder(tmp_path, {"seed": 1}, clear=["results.jsonl", "ckpt"])
    claim_run_folder(tmp_path, {"seed": 1}, overwrite=True, clear=["results.jsonl", "ckpt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", SETTINGS_FILE]
    claim_run_folder(tmp_path, {"seed": 1}, overwrite=True, clear=["notes.txt"])
    assert (tmp_path / "notes.txt").is_file()


def test_differing_settings_lists_added_and_removed_names() -> None:
    assert differing_settings({"a": 1, "b": [1]}, {"b": [1, 2], "c": "x"}) == [
        "a: 1 -> (unset)", "b: [1] -> [1, 2]", 'c: (unset) -> "x"',
    ]


@pytest.mark.parametrize("command", ["eval", "train", "episodes"])
def test_every_command_but_generate_takes_verbose(command: str, capsys: pytest.CaptureFixture) -> None:
    assert _exit_status([command, "--help"]) == 0
    assert "--verbose" in capsys.readouterr().out
