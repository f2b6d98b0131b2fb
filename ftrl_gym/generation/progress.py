"""One progress line for a generation run: tasks accepted, candidates tried and requests sent."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Self, TextIO

from tqdm import tqdm


class Progress:
    """Counts a run's events and shows them on one line.

    On a terminal it is a live bar of accepted tasks against the target, with the candidates and
    requests behind it; elsewhere (a log file, a pipe) it writes a plain line every ``interval_s``
    seconds and one final line, so a log holds no half-drawn bars.

    Called with ``"request"``, ``"rejected"`` or ``"accepted"`` (the LLM backend's events);
    :meth:`update` counts accepted tasks (the offline backend's bar callback).
    """

    def __init__(
        self, total: int, desc: str, stream: TextIO | None = None, interval_s: float = 30.0
    ) -> None:
        self.total, self.desc, self.interval_s = total, desc, interval_s
        self.stream = stream or sys.stderr
        self.requests = self.rejected = self.accepted = 0
        self._start = self._shown = time.monotonic()
        self._lock = threading.Lock()
        live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = tqdm(total=total, desc=desc, unit="task", file=self.stream) if live else None

    def __call__(self, event: str) -> None:
        """Count one event: ``request``, ``rejected`` (a candidate) or ``accepted`` (a task)."""
        with self._lock:
            if event == "request":
                self.requests += 1
            elif event == "rejected":
                self.rejected += 1
            elif event == "accepted":
                self.accepted += 1
            else:
                raise ValueError(
                    f"unknown progress event {event!r}; expected request, rejected or accepted"
                )
            self._show(event == "accepted")

    def update(self, n: int = 1) -> None:
        """Count ``n`` accepted tasks."""
        for _ in range(n):
            self("accepted")

    def line(self) -> str:
        """The current state as one line of text."""
        candidates = self.accepted + self.rejected
        text = f"{self.desc}: {self.accepted}/{self.total} tasks, {candidates} candidates"
        if self.requests:
            text += f", {self.requests} requests"
        return text + f", {time.monotonic() - self._start:.0f} s"

    def _show(self, accepted: bool) -> None:
        if self._bar is not None:
            if accepted:
                self._bar.update(1)
            self._bar.set_postfix_str(
                f"{self.accepted + self.rejected} candidates, {self.requests} requests"
            )
        elif time.monotonic() - self._shown >= self.interval_s:
            self._shown = time.monotonic()
            self._write_line()

    def close(self) -> None:
        """End the line: close the bar, or write the final plain line."""
        if self._bar is not None:
            self._bar.close()
        else:
            self._write_line()

    def _write_line(self) -> None:
        """Write the plain progress line (off a terminal), as a bar would write itself."""
        self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
