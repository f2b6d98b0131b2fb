"""Run a benchmark variant in a fresh Python process and read back what it measured, so variants do
not see each other's allocations in the peak resident set (``ru_maxrss`` never goes down)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Sequence
from typing import Any


def max_rss_kb() -> int:
    """This process's peak resident set so far, in KiB (Linux's ``ru_maxrss`` unit)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def grown_gb(before_kb: int) -> float:
    """How far this process's peak resident set has grown past ``before_kb`` (a :func:`max_rss_kb`
    reading), in GB."""
    return (max_rss_kb() - before_kb) * 1024 / 1e9


def run_fresh(module: str, argv: Sequence[str]) -> dict[str, Any]:
    """Run ``python -m module *argv`` and return the JSON object on the last line of its output.

    Raises:
        subprocess.CalledProcessError: The process failed (its stderr is on the exception).
    """
    out = subprocess.run(
        [sys.executable, "-m", module, *argv], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])
