"""The append-only JSONL file of finished episodes that makes an evaluation resumable."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STORE_NAME = "results.jsonl"
"""The store's file name in an evaluation's folder (``ftrl-gym eval --out``, a pipeline stage's
``eval/<stage>``)."""
KEY_FIELDS = ("agent", "env", "split", "tasks", "task_index", "repeat")
"""The fields that identify an episode: a rerun skips every key already in the file."""


def episode_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """Return the identity of an episode record (see ``KEY_FIELDS``)."""
    return tuple(record.get(field) for field in KEY_FIELDS)


class ResultStore:
    """One JSONL line per finished episode, written and flushed to disk as each episode ends.

    Opening a store reads the lines already there; a last line cut short by a kill is dropped (it is
    rewritten when its episode runs again), so an interrupted run loses at most the episodes that were
    still in flight and never counts one twice.

    Args:
        path: The JSONL file; created with its folder if missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._records: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
        for number, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{self.path}:{number}: not a JSON line ({exc}); move the file away "
                                 "or fix the line to resume") from exc
            self._records.setdefault(episode_key(record), record)

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._records.values()))

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        """The stored record of an episode key, or None."""
        return self._records.get(key)

    def append(self, record: dict[str, Any]) -> bool:
        """Write one finished episode; a key already stored is ignored.

        Args:
            record: The episode's results, with every field of ``KEY_FIELDS``.

        Returns:
            True when the record was written, False when its key was already there.
        """
        key = episode_key(record)
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        with self._lock:
            if key in self._records:
                return False
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._records[key] = record
        return True
