"""Resumable checkpoints: Hugging Face weights plus the trainer's state, written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "trainer_state.pt"
LATEST_FILE = "latest"


def write_folder_atomically(folder: str | Path, write: Callable[[Path], None]) -> Path:
    """Build ``folder`` with ``write(staging)`` in a temporary sibling, then rename it into place.

    A kill while ``write`` runs leaves the old folder (or none) and never a half-written one, so a
    caller may take a folder that exists as complete. An old folder is set aside before the rename and
    deleted after it.

    Args:
        folder: The folder to (re)create.
        write: Writes the folder's files into the empty staging folder it is given.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for prefix in (".staging", ".retired"):  # left by a writer killed before its cleanup
        for leftover in folder.parent.glob(f"{prefix}.{folder.name}.*"):
            shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging.{folder.name}.", dir=folder.parent))
    retired = None
    try:
        write(staging)
        if folder.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".retired.{folder.name}.", dir=folder.parent))
            os.replace(folder, retired / folder.name)
        os.replace(staging, folder)
    except BaseException:
        if retired is not None and not folder.exists():
            os.replace(retired / folder.name, folder)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    return folder


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
        pointer = self.root / f".{LATEST_FILE}.tmp"
        pointer.write_text(target.name)
        os.replace(pointer, self.root / LATEST_FILE)
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
