"""The one-line error messages tool failures are reported with (shared by worker and parent)."""

from __future__ import annotations

MAX_DETAIL = 300
"""Characters of an exception message kept in an error line."""


def one_line(text: str, limit: int = MAX_DETAIL) -> str:
    """Collapse ``text`` to a single line of at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def seconds(value: float) -> str:
    """Format a number of seconds the way the error lines show it (``10``, ``1.5``)."""
    return f"{value:g}"


def unknown_tool(name: str, available: list[str]) -> str:
    """The error line for a call of a tool the session does not define."""
    names = ", ".join(sorted(available)) or "(none)"
    return f"error: unknown tool {one_line(name, 80)!r}; available: {names}"


def timed_out(name: str, timeout_s: float) -> str:
    """The error line for a call that missed its wall-clock deadline."""
    return f"error: tool {name!r} timed out after {seconds(timeout_s)} s"


def out_of_memory(name: str, memory_mb: int) -> str:
    """The error line for a call that hit the worker's memory limit."""
    return f"error: tool {name!r} exceeded the memory limit ({memory_mb} MB)"


def crashed(name: str, returncode: int | None) -> str:
    """The error line for a call during which the worker process died."""
    how = "" if returncode is None else (
        f" (killed by signal {-returncode})" if returncode < 0 else f" (exit status {returncode})")
    return f"error: tool {name!r} crashed the sandbox worker process{how}; the worker was replaced"


def state_lost(name: str) -> str:
    """The error line for a call in a stateful episode whose world state died with its worker."""
    return (f"error: tool {name!r} was not run: the episode state was lost when the sandbox worker "
            "died (an earlier call timed out or crashed)")


def session_closed(name: str) -> str:
    """The error line for a call on a closed session."""
    return f"error: tool {name!r} was not run: the sandbox session is closed"


def raised(name: str, description: str) -> str:
    """The error line for a tool that raised; ``description`` is ``"Type: message"``."""
    return f"error: tool {name!r} raised {description}"


def bad_arguments(name: str, detail: str) -> str:
    """The error line for a call whose arguments do not fit the tool's signature."""
    return f"error: bad arguments for tool {name!r}: {one_line(detail)}"


def not_compiled(name: str, detail: str) -> str:
    """The error line for a tool whose code does not compile under the sandbox policy."""
    return f"error: tool {name!r} could not be compiled: {one_line(detail)}"


def not_loaded(name: str, detail: str) -> str:
    """The error line for a tool whose module code failed or does not define the function."""
    return f"error: tool {name!r} could not be loaded: {one_line(detail)}"


def bad_result(name: str, detail: str) -> str:
    """The error line for a tool whose return value cannot be turned into text."""
    return f"error: tool {name!r} returned a value that cannot be converted to text: {one_line(detail)}"
