"""The Berkeley Function Calling Leaderboard as native envs, read from the installed ``bfcl-eval``."""

from __future__ import annotations

from ftrl_gym.bfcl.source import CATEGORIES, MULTI_TURN_CATEGORIES, SINGLE_TURN_CATEGORIES, require_bfcl

__all__ = ["CATEGORIES", "MULTI_TURN_CATEGORIES", "SINGLE_TURN_CATEGORIES", "require_bfcl"]
