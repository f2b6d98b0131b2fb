"""Files written whole or not at all: a reader sees the old content or the new, never a part."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to a uniquely named hidden sibling of ``path``, then rename it over ``path``.

    The rename is atomic on one file system, so a kill leaves the previous file (or none), and
    concurrent writers each rename a whole file of their own. A failed write removes its staging file.

    Args:
        path: The file to write; its folder must exist.
        text: The whole new content.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path
