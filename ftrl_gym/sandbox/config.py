"""Public value types of the sandbox: its configuration, a tool call and a tool result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ftrl_gym.errors import SandboxError


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and size of a :class:`~ftrl_gym.sandbox.Sandbox`."""

    timeout_s: float = 10.0
    """Wall-clock seconds one tool call may take, enforced from outside the worker process."""

    memory_mb: int = 1024
    """Address-space limit (``RLIMIT_AS``) of each worker process, in MiB."""

    output_limit: int = 65536
    """Bytes of result text kept before the text is truncated with a marker."""

    startup_timeout_s: float = 30.0
    """Seconds the zygote (or a new episode process) may take to report ready before
    :class:`SandboxError` is raised."""

    require_os_boundary: bool = False
    """Refuse to run (``SandboxError``) when a layer of the OS boundary is unavailable on this host,
    instead of warning once and running with the layers that are there. The environment variable
    ``FTRL_REQUIRE_OS_SANDBOX=1`` sets it for every sandbox."""

    language_barrier: bool = True
    """Compile tool code under RestrictedPython with guarded builtins. ``False`` runs it as plain Python
    and exists only to test the OS boundary on its own (the assume-the-language-barrier-is-broken suite):
    never set it for code you do not trust."""

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s)
                and self.timeout_s > 0):
            raise SandboxError(f"SandboxConfig.timeout_s must be a positive number of seconds, "
                               f"got {self.timeout_s!r}")
        if not isinstance(self.memory_mb, int) or self.memory_mb < 64:
            raise SandboxError(f"SandboxConfig.memory_mb must be an int >= 64 (MiB), got {self.memory_mb!r}; "
                               "a Python worker needs about 40 MiB to start")
        if not isinstance(self.output_limit, int) or self.output_limit < 64:
            raise SandboxError(f"SandboxConfig.output_limit must be an int >= 64 (bytes), "
                               f"got {self.output_limit!r}")
        if not self.startup_timeout_s > 0:
            raise SandboxError(f"SandboxConfig.startup_timeout_s must be positive, "
                               f"got {self.startup_timeout_s!r}")


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool by name."""

    name: str
    """The tool's name, a key of the session's ``codes``."""

    arguments: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments, already parsed from the model's JSON (JSON-safe values)."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one tool call produced. Failures are results too (``ok=False``), never exceptions."""

    ok: bool
    """True when the tool returned normally."""

    text: str
    """What the agent reads: ``json.dumps(value)`` for a dict or list, ``str(value)`` otherwise (computed
    inside the worker, truncated to ``output_limit`` bytes with a marker); the error line when not ok."""

    value: Any
    """The JSON-safe return value: the value itself for None/bool/int/float/str, the parsed JSON for a
    dict or list, the text for any other type; None when not ok or when the text was truncated."""

    error: str | None
    """One line, such as ``"error: tool 'x' timed out after 10 s"``; None when ok."""

    elapsed_s: float
    """Seconds the call took (measured in the worker; from outside for timeouts and crashes)."""
