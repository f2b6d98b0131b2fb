"""ftrl-gym: Gymnasium environments for teaching LLMs to use tools with reinforcement learning."""

from __future__ import annotations

__version__ = "0.1.0"
