"""Resumable checkpoints: Hugging Face weights plus the trainer's state, written atomically."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from ftrl_gym.agents.atomic import write_folder_atomically
from ftrl_gym.atomic import write_text_atomically

STATE_FILE = "trainer_state.pt"
LATEST_FILE = "latest"


class CheckpointStore:
    """Checkpoints under one folder: ``step_<N>/`` (HF model folder + ``trainer_state.pt``), ``latest``.

    A checkpoint is built in a temporary sibling and renamed into place, and ``latest`` is replaced
    atomically after it, so a kill at any moment leaves the previous checkpoint intact.

    Args:
        root: The folder.
        keep: Most checkpoints kept (older ones are deleted).
    """

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep

    def save(self, step: int, policy: Any, state: dict[str, Any]) -> Path:
        """Write the policy (HF format) and ``state`` as checkpoint ``step``; returns its folder."""

        def write(staging: Path) -> None:
            policy.write_to(staging)
            torch.save(state, staging / STATE_FILE)

        target = write_folder_atomically(self.root / f"step_{step:06d}", write)
        write_text_atomically(self.root / LATEST_FILE, target.name)
        self._prune()
        return target

    def _prune(self) -> None:
        folders = sorted(p for p in self.root.glob("step_*") if p.is_dir())
        for old in folders[: max(len(folders) - self.keep, 0)]:
            shutil.rmtree(old, ignore_errors=True)

    def latest_model(self) -> Path | None:
        """The newest checkpoint's folder, or None."""
        pointer = self.root / LATEST_FILE
        if not pointer.is_file():
            return None
        folder = self.root / pointer.read_text().strip()
        return folder if (folder / STATE_FILE).is_file() else None

    def load_latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint's folder and trainer state, or None when there is none."""
        folder = self.latest_model()
        if folder is None:
            return None
        return folder, torch.load(folder / STATE_FILE, weights_only=False)
