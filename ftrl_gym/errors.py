"""Typed errors, one per boundary a failure crosses (data, sandbox, environment, agent, training).

Agent mistakes are never errors: a bad tool call or a tool that raises comes back to the agent as a
tool message and a reward. These classes are for infrastructure failures and invalid user input.
"""

from __future__ import annotations


class FTRLError(Exception):
    """Base class of every error ftrl-gym raises on purpose."""


class TaskFormatError(FTRLError, ValueError):
    """A task record or task file is malformed.

    The message names the source and line (``tasks.jsonl:17``) and the field at fault, and says what
    was expected.
    """


class SandboxError(FTRLError, RuntimeError):
    """The sandbox infrastructure failed (a worker process cannot be started or answers garbage).

    Never raised for anything tool code does: tool failures are returned as error results.
    """


class EpisodeStateLostError(SandboxError):
    """A stateful episode's world state was lost because its worker process died."""


class EnvConfigError(FTRLError, ValueError):
    """An environment was configured with invalid arguments (unknown reward, bad split, ...)."""


class AgentError(FTRLError, RuntimeError):
    """An agent cannot produce responses at all (unreachable endpoint, missing model files, ...)."""


class GenerationError(FTRLError, RuntimeError):
    """The environment construction pipeline cannot run (bad configuration, backend unreachable)."""
