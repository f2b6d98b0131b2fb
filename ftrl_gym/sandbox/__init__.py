"""Running untrusted tool code: RestrictedPython in persistent worker processes with hard limits.

See ``docs/sandbox.md`` for what is guaranteed and how fast it is.
"""

from __future__ import annotations

from ftrl_gym.sandbox.config import SandboxConfig, ToolCall, ToolResult
from ftrl_gym.sandbox.sandbox import Sandbox
from ftrl_gym.sandbox.session import SandboxSession

__all__ = ["Sandbox", "SandboxConfig", "SandboxSession", "ToolCall", "ToolResult"]
