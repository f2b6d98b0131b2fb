"""Fixtures for training tests: the SmolLM2 tokenizer, tiny random Llama models and an easy task file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from training_helpers import EASY_ANSWER, ECHO_TOOL

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared CPU two threads spin against others."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tokenizer():
    """SmolLM2-135M-Instruct's tokenizer (chat template included), from the offline model folder."""
    from ftrl_gym.agents.models import resolve_model
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model("smollm2"))


@pytest.fixture
def easy_tasks(tmp_path: Path) -> Path:
    """Four one-tool tasks whose answer is the letter ``w``: any reply containing it is rewarded."""
    code = "def echo(text):\n    return text\n"
    tool = ECHO_TOOL
    path = tmp_path / "easy.jsonl"
    with open(path, "w") as handle:
        handle.writelines(
            json.dumps(
                {
                    "messages": [{"role": "user", "content": f"Say it {i}."}],
                    "tools": [tool],
                    "codes": {"echo": code},
                    "unsolved_set": {"echo": [EASY_ANSWER]},
                    "answer": EASY_ANSWER,
                    "split": "train",
                    "scenario": "single_hop",
                }
            )
            + "\n"
            for i in range(4)
        )
    return path
