"""The settings a run folder was made with: stored beside its results and compared on a rerun."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ftrl_gym.errors import FTRLError

SETTINGS_FILE = "run_settings.json"
"""The file, inside a run folder, that holds the settings the folder's results were made with."""


class RunSettingsError(FTRLError, ValueError):
    """A rerun into an existing run folder asked for settings other than those it was made with."""


def differing_settings(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Describe each setting whose value differs between two settings maps.

    Args:
        stored: The settings a folder was made with.
        wanted: The settings of the rerun.

    Returns:
        One ``name: old -> new`` entry per differing setting, sorted by name (a setting present on
        one side only shows as ``(unset)`` on the other).
    """
    missing = "(unset)"
    names = sorted(set(stored) | set(wanted))
    return [
        f"{name}: {_show(stored.get(name, missing))} -> {_show(wanted.get(name, missing))}"
        for name in names
        if stored.get(name, missing) != wanted.get(name, missing)
    ]


def _show(value: Any) -> str:
    return value if value == "(unset)" else json.dumps(value, sort_keys=True)


def claim_run_folder(
    out: str | Path,
    settings: Mapping[str, Any],
    *,
    overwrite: bool = False,
    clear: Iterable[str] = (),
    may_change: Iterable[str] = (),
) -> None:
    """Make ``out`` a run folder of ``settings``: resume when it already is one, refuse when not.

    The settings are stored as JSON in ``out/run_settings.json``. A folder with no stored settings
    (a new one, or one made before settings were stored) is claimed as it is.

    Args:
        out: The run folder.
        settings: JSON-ready settings that change the folder's results.
        overwrite: When the stored settings differ, delete ``clear`` and start afresh instead of
            refusing.
        clear: Names inside ``out`` (files or folders) that hold results of the old settings.
        may_change: Settings a rerun may change without touching the results already there (a
            pipeline's list of RL stages: each stage has its own folder); the new value is stored.

    Raises:
        RunSettingsError: ``out`` holds results of other settings and ``overwrite`` is False; the
            message names each differing setting.
    """
    folder = Path(out)
    path = folder / SETTINGS_FILE
    wanted = json.loads(json.dumps(dict(settings), sort_keys=True))
    if path.is_file():
        stored = json.loads(path.read_text())
        kept = set(may_change)
        differences = differing_settings(
            {k: v for k, v in stored.items() if k not in kept},
            {k: v for k, v in wanted.items() if k not in kept},
        )
        if differences and not overwrite:
            raise RunSettingsError(
                f"{folder} holds results made with other settings ({'; '.join(differences)}): "
                "pass --overwrite to replace them or choose another --out"
            )
        if differences:
            for name in clear:
                _remove(folder / name)
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
