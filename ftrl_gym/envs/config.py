"""The env's keyword arguments as a validated dataclass, and where the built-in datasets live."""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ftrl_gym.errors import EnvConfigError, GenerationError
from ftrl_gym.reward import REWARD_VARIANTS
from ftrl_gym.tasks import SCENARIOS, TaskRecord, load_tasks

SPLITS: tuple[str, ...] = ("train", "test")
"""Dataset splits of the built-in ids."""

MIXED = "mixed"
"""Pseudo-scenario of ``FTRL-Mixed-v0``: the four scenarios together."""

MIN_OUTPUT_BYTES_PER_TURN = 64
"""Smallest accepted ``max_output_bytes_per_turn``: room for one short tool answer."""


@dataclass(frozen=True)
class ToolUseEnvConfig:
    """Episode settings shared by every env id (the ``gym.make`` keyword arguments of SPEC 5)."""

    max_turns: int = 20
    """Assistant turns before the episode is truncated."""
    reward: str = "solve_f1"
    """Reward variant: a key of ``ftrl_gym.reward.REWARD_VARIANTS``."""
    tool_timeout: float = 10.0
    """Wall-clock seconds one tool call may run."""
    tool_memory_mb: int = 1024
    """Memory limit of each sandbox worker process, in MiB."""
    turn_timeout: float = 30.0
    """Wall-clock seconds the tool calls of one turn may take together. Calls stop starting once it is
    spent (they are sent in batches that fit in what is left, each call allowed ``tool_timeout``), so a
    turn lasts at most ``turn_timeout + tool_timeout``; the calls it leaves are not run and say why."""
    max_calls_per_turn: int = 16
    """Tool calls run per turn (the shipped tasks need at most 4); later calls of the turn are not run,
    and still count as calls for the reward."""
    max_output_bytes_per_turn: int = 2**18
    """UTF-8 bytes of tool output one turn may put into the conversation (256 KiB, as many characters
    as the observation holds); later output is cut with a marker."""
    abstention_reward: float = 1.0
    """Reward of a correct abstention: a well-formed call-free turn on a task whose scorer expects no
    call (``ftrl_gym.reward.ABSTENTION_REWARD``); SPEC 3 alone would give it 0."""
    error_call_charge: float = 0.0
    """Taken off a turn's reward per call whose result is an error (``ftrl_gym.reward.call_charge``);
    0 keeps SPEC 3."""
    duplicate_call_charge: float = 0.0
    """Taken off a turn's reward per call identical to an earlier call of the episode; 0 keeps SPEC 3."""

    def __post_init__(self) -> None:
        if isinstance(self.max_turns, bool) or not isinstance(self.max_turns, int) or self.max_turns < 1:
            raise EnvConfigError(
                f"max_turns must be a positive int, got {self.max_turns!r}; e.g. gym.make(id, max_turns=20)"
            )
        if self.reward not in REWARD_VARIANTS:
            raise EnvConfigError(
                f"unknown reward {self.reward!r}{_did_you_mean(self.reward, REWARD_VARIANTS)}; "
                f"choose one of {', '.join(REWARD_VARIANTS)}"
            )
        if not _positive_number(self.tool_timeout):
            raise EnvConfigError(f"tool_timeout must be a positive number of seconds, got {self.tool_timeout!r}")
        memory = self.tool_memory_mb
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < 64:
            raise EnvConfigError(
                f"tool_memory_mb must be an int of at least 64 (MiB), got {memory!r}; the default is 1024"
            )
        self._check_turn_budgets()
        value = self.abstention_reward
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise EnvConfigError(f"abstention_reward must be a finite number, got {value!r}; the default is 1.0")
        for name in ("error_call_charge", "duplicate_call_charge"):
            charge = getattr(self, name)
            if isinstance(charge, bool) or not isinstance(charge, (int, float)) or not 0 <= charge < math.inf:
                raise EnvConfigError(f"{name} must be a finite number >= 0, got {charge!r}; 0 keeps SPEC 3")

    def _check_turn_budgets(self) -> None:
        """Validate ``turn_timeout``, ``max_calls_per_turn`` and ``max_output_bytes_per_turn``."""
        if not _positive_number(self.turn_timeout):
            raise EnvConfigError(
                f"turn_timeout must be a positive number of seconds, got {self.turn_timeout!r}; "
                "e.g. gym.make(id, turn_timeout=30)"
            )
        calls = self.max_calls_per_turn
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
            raise EnvConfigError(
                f"max_calls_per_turn must be a positive int, got {calls!r}; "
                "e.g. gym.make(id, max_calls_per_turn=16)"
            )
        output = self.max_output_bytes_per_turn
        if isinstance(output, bool) or not isinstance(output, int) or output < MIN_OUTPUT_BYTES_PER_TURN:
            raise EnvConfigError(
                f"max_output_bytes_per_turn must be an int of at least {MIN_OUTPUT_BYTES_PER_TURN} (bytes), "
                f"got {output!r}; the default is {2**18}"
            )


def _positive_number(value: object) -> bool:
    """A finite int or float above 0 (not a bool)."""
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value) and value > 0)


def _did_you_mean(value: object, choices: object) -> str:
    """`` (did you mean 'x'?)`` when a close match exists."""
    matches = difflib.get_close_matches(str(value), list(choices), n=1)  # type: ignore[call-overload]
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def builtin_task_files(scenario: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The dataset files behind a built-in id, generating an on-demand split on first use.

    Args:
        scenario: One of ``ftrl_gym.tasks.SCENARIOS`` or ``"mixed"``.
        split: ``"train"`` or ``"test"``.
        data_dir: Dataset root; default ``$FTRL_GYM_DATA_DIR`` or the repository's ``envs_generated/``.

    Returns:
        One path per scenario, in ``SCENARIOS`` order.

    Raises:
        EnvConfigError: Unknown split or scenario, or a file that is missing and cannot be generated.
    """
    if split not in SPLITS:
        raise EnvConfigError(
            f"unknown split {split!r}{_did_you_mean(split, SPLITS)}; use split='train' or split='test'"
        )
    if scenario != MIXED and scenario not in SCENARIOS:
        raise EnvConfigError(f"unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)} or {MIXED!r}")
    from ftrl_gym.generation import datasets

    root = Path(data_dir) if data_dir is not None else datasets.data_dir()
    files = []
    for name in SCENARIOS if scenario == MIXED else (scenario,):
        path = root / name / f"{split}.jsonl"
        if not path.is_file():
            try:
                path = datasets.dataset_path(name, split, root)
            except GenerationError as exc:
                raise EnvConfigError(
                    f"dataset file {path} not found and cannot be generated ({exc}); point data_dir= "
                    f"(or ${datasets.DATA_DIR_ENV}) at a directory of <scenario>/<split>.jsonl files"
                ) from exc
        files.append(path)
    return files


def load_builtin_tasks(scenario: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> list[TaskRecord]:
    """Load the tasks behind a built-in id (all scenarios in order for ``"mixed"``).

    Args:
        scenario: One of ``ftrl_gym.tasks.SCENARIOS`` or ``"mixed"``.
        split: ``"train"`` or ``"test"``.
        data_dir: See :func:`builtin_task_files`.

    Returns:
        The task records.
    """
    return [task for path in builtin_task_files(scenario, split, data_dir) for task in load_tasks(path)]
