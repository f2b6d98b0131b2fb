"""Fixtures for training tests: the SmolLM2 tokenizer, tiny random Llama models and an easy task file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from training_helpers import write_easy_tasks

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
    return write_easy_tasks(tmp_path / "easy.jsonl", 4)
