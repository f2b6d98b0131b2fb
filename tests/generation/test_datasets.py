"""The shipped datasets: manifest, byte-exact regeneration, validity, the on-demand train split."""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import pytest

import ftrl_gym  # noqa: F401  (registers the env ids)
from ftrl_gym.errors import GenerationError
from ftrl_gym.generation import datasets
from ftrl_gym.generation.pipeline import GenerationConfig, generate
from ftrl_gym.generation.scenes import SCENARIOS
from ftrl_gym.generation.validation import validate
from ftrl_gym.tasks import load_tasks, save_tasks

ROOT = datasets.default_data_dir()


def test_manifest_matches_the_committed_files():
    manifest = datasets.read_manifest(ROOT)
    assert datasets.check_manifest(ROOT) == []
    assert manifest["seed"] == datasets.RELEASE_SEED
    for scenario in SCENARIOS:
        test = manifest["files"][f"{scenario}/test.jsonl"]
        train = manifest["files"][f"{scenario}/train.jsonl"]
        assert test["committed"] and test["count"] >= 200
        assert not train["committed"] and train["count"] >= 1000


def test_check_manifest_reports_tampering(tmp_path):
    shutil.copytree(ROOT, tmp_path / "data", ignore=shutil.ignore_patterns("train.jsonl"))
    path = tmp_path / "data" / "single_hop" / "test.jsonl"
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])
    assert datasets.check_manifest(tmp_path / "data") == [
        "single_hop/test.jsonl: sha256 differs from the manifest",
        "single_hop/test.jsonl: 1 records, the manifest says 200",
    ]


def test_the_committed_test_split_regenerates_byte_for_byte(sandbox, tmp_path):
    files = datasets.read_manifest(ROOT)["files"]
    sizes = {files[f"{scenario}/test.jsonl"]["count"] for scenario in SCENARIOS}
    config = GenerationConfig(n=sizes.pop(), seed=datasets.RELEASE_SEED, split="test")
    assert not sizes, "every scenario's test split has the same size"
    records, _ = generate(config, sandbox)
    for scenario, tasks in records.items():
        save_tasks(tasks, tmp_path / f"{scenario}.jsonl", json_strings=False)
        digest = datasets.file_sha256(tmp_path / f"{scenario}.jsonl")
        assert digest == files[f"{scenario}/test.jsonl"]["sha256"], scenario


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_shipped_test_task_validates_and_the_oracle_scores_f1_one(scenario, sandbox):
    tasks = load_tasks(ROOT / scenario / "test.jsonl")
    env = gym.make("FTRL-Custom-v0", tasks=tasks)
    for index, task in enumerate(tasks):
        assert validate(task.to_dict(), sandbox).ok, (scenario, index)
        env.reset(options={"task_index": index})
        for turn in task.solution:
            _, _, terminated, _, info = env.step(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "type": "function",
                            "function": {
                                "name": c["name"],
                                "arguments": json.dumps(c["arguments"]),
                            },
                        }
                        for c in turn
                    ],
                }
            )
            assert not terminated
        _, reward, terminated, _, info = env.step(f"The answer is {task.answer}.")
        assert terminated and reward == 1.0
        assert info["metrics"]["solve_f1"] == 1.0, (scenario, index)
    env.close()


def test_the_train_split_is_generated_on_demand_and_hash_checked(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT, data, ignore=shutil.ignore_patterns("*.jsonl"))
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["files"] = {"single_hop/train.jsonl": manifest["files"]["single_hop/train.jsonl"]}
    (data / "manifest.json").write_text(json.dumps(manifest))
    path = datasets.dataset_path("single_hop", "train", data)
    assert path == data / "single_hop" / "train.jsonl"
    assert datasets.file_sha256(path) == manifest["files"]["single_hop/train.jsonl"]["sha256"]
    assert len(load_tasks(path)) == manifest["files"]["single_hop/train.jsonl"]["count"]
    assert datasets.dataset_path("single_hop", "train", data) == path


def test_a_stale_file_is_not_served_and_a_drifted_generator_is_caught(tmp_path):
    data = tmp_path / "data"
    (data / "single_hop").mkdir(parents=True)
    manifest = {
        "seed": 1,
        "files": {"single_hop/train.jsonl": {"count": 3, "sha256": "0" * 64, "committed": False}},
    }
    (data / "manifest.json").write_text(json.dumps(manifest))
    (data / "single_hop" / "train.jsonl").write_text("left by an older release\n")
    with pytest.raises(GenerationError, match="the generator changed"):
        datasets.dataset_path("single_hop", "train", data)
    assert not (data / "single_hop" / "train.jsonl").exists()
    with pytest.raises(GenerationError, match="lists no test split for scenario 'single_hop'"):
        datasets.dataset_path("single_hop", "test", data)


def test_a_small_release_round_trips_through_its_manifest(tmp_path):
    root = tmp_path / "release"
    root.mkdir()
    manifest = datasets.build_release(root, ["multi_hop"], seed=7, sizes={"test": 3, "train": 2})
    assert set(manifest["files"]) == {"multi_hop/test.jsonl", "multi_hop/train.jsonl"}
    assert manifest["summary"]["train"]["accepted"] == {"multi_hop": 2}
    assert datasets.check_manifest(root) == []
    (root / "multi_hop" / "train.jsonl").unlink()
    assert datasets.check_manifest(root) == []
    regenerated = datasets.dataset_path("multi_hop", "train", root)
    assert datasets.file_sha256(regenerated) == manifest["files"]["multi_hop/train.jsonl"]["sha256"]
    assert datasets.dataset_path("multi_hop", "test", root) == root / "multi_hop" / "test.jsonl"
