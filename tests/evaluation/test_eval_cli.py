"""``ftrl-gym eval`` end to end in-process: report files, printed table, exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftrl_gym.cli import main


def test_eval_writes_results_report_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main([
        "eval", "--agent", "oracle", "random", "--env", "FTRL-MultiHop-v0", "FTRL-Mixed-v0",
        "--episodes", "3", "--out", str(tmp_path), "--no-progress",
    ])
    out = capsys.readouterr().out
    assert code == 0
    assert "| FTRL-MultiHop-v0 | multi_hop | oracle | 3 | 1.000 ± 0.000 | 1.000 ± 0.000 | 1.000 ± 0.000" in out
    assert "| FTRL-Mixed-v0 | all | oracle | 3 |" in out
    assert "random(seed=0)" in out
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 12
    report = json.loads((tmp_path / "report.json").read_text())
    assert report[0]["solve_f1"]["mean"] == 1.0
    assert (tmp_path / "solve_f1.png").stat().st_size > 1000


def test_eval_rerun_skips_what_is_done(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["eval", "--env", "FTRL-SingleHop-v0", "--episodes", "2", "--out", str(tmp_path),
            "--no-progress"]
    assert main(argv) == 0
    first = (tmp_path / "results.jsonl").read_text()
    assert main(argv) == 0
    assert (tmp_path / "results.jsonl").read_text() == first


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "FTRL-SingleHopp-v0"], "Did you mean 'FTRL-SingleHop-v0'?"),
        (["--agent", "nonsense"], "unknown agent 'nonsense'"),
        (["--agent", "no_such_module_xyz:Agent"], "cannot import module 'no_such_module_xyz'"),
        (["--agent", "hf", "--model", "/no/such/model"], "model '/no/such/model' is neither a local path nor a Hub id"),
        (["--agent", "vllm", "--model", "/no/such/model"], "model '/no/such/model' is neither a local path nor a Hub id"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    pytest.importorskip("torch") if "--model" in argv else None
    code = main(["eval", *argv, "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_user_agent_class_by_module_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main([
        "eval", "--agent", "ftrl_gym.agents.baselines:RandomAgent", "--agent-kwargs", '{"seed": 7}',
        "--env", "FTRL-SingleHop-v0", "--episodes", "2", "--out", str(tmp_path), "--no-progress",
    ])
    assert code == 0
    assert "random(seed=7)" in capsys.readouterr().out


def test_main_preset_fills_only_what_is_not_given() -> None:
    import argparse

    from ftrl_gym.evaluation.eval_cli import SCENARIO_ENV_IDS, add_arguments, resolve_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = resolve_arguments(parser.parse_args(["--preset", "main", "--episodes", "1"]))
    assert args.agent == ["oracle", "random", "hf"]
    assert args.env == SCENARIO_ENV_IDS
    assert (args.episodes, args.max_tokens, args.concurrency, args.out) == (1, 64, 8, "runs/main")
    plain = resolve_arguments(parser.parse_args([]))
    assert (plain.agent, plain.episodes, plain.concurrency, plain.out) == (["oracle"], None, 4, "runs/eval")
