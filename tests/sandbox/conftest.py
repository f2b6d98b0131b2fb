"""Fixtures of the sandbox tests: one real sandbox with short limits, and the host sentinel file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_corpus import SENTINEL
from sandbox_limits import MEMORY_MB, TIMEOUT_S

from ftrl_gym.sandbox import Sandbox, SandboxConfig


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """A sandbox shared by the tests that do not count processes."""
    with Sandbox(SandboxConfig(timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB)) as box:
        yield box


@pytest.fixture()
def sentinel() -> Iterator[Path]:
    """The host file hostile tools aim at, with known content."""
    path = Path(SENTINEL)
    path.write_text("untouched")
    yield path
    path.unlink(missing_ok=True)
