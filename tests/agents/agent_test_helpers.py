"""Checks shared by the model-backed agent tests."""

from __future__ import annotations

import importlib.util

import pytest


def require(*modules: str) -> None:
    """Skip the test, saying why, when an optional dependency cannot be imported."""
    for name in modules:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not importable: install the extras (see docs/agents.md)")


def assert_scored_records(records: list[dict], expected: int, max_new_tokens: int) -> None:
    """Every episode finished, was scored by the env and counted the model's tokens."""
    assert len(records) == expected
    for record in records:
        assert record["turns"] >= 1
        assert 0.0 <= record["solve_f1"] <= 1.0 and 0.0 <= record["solve_p"] <= 1.0
        assert record["prompt_tokens"] > 100 * record["turns"]
        assert 0 < record["completion_tokens"] <= max_new_tokens * record["turns"]
        assert record["tool_calls"] >= record["solved"] >= 0
