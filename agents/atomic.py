"""Folders written whole or not at all: model folders, checkpoints and the converted model cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_folder_atomically(folder: str | Path, write: Callable[[Path], None]) -> Path:
    """Build ``folder`` with ``write(staging)`` in a temporary sibling, then rename it into place.

    A kill while ``write`` runs leaves the old folder (or none) and never a half-written one, so a
    caller may take a folder that exists as complete. An old folder is set aside before the rename and
    deleted after it. The new folder is world-readable (0o755), as model folders were before. One
    writer per folder at a time: a second would remove the first one's staging folder as a leftover.

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
        os.chmod(staging, 0o755)  # mkdtemp makes it 0o700
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
