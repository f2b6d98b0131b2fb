"""Length-prefixed frames over raw pipe file descriptors; nothing is ever pickled.

Requests (parent to worker) and state replies are JSON. The reply to one tool call is the hot path, so it
is a fixed 9-byte head (kind, elapsed seconds as a double) followed by the UTF-8 result text; the value is
rebuilt from the text (JSON-parsed for a dict or list), never deserialised from anything richer.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from json.scanner import c_make_scanner  # type: ignore[attr-defined]
from typing import Any

HEADER = struct.Struct("<I")
"""A frame is a 4-byte little-endian payload length, then the payload."""

READ_CHUNK = 1 << 16


def _not_serialisable(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_encode = c_make_encoder(None, _not_serialisable, encode_basestring_ascii, None, ":", ",", False, False, True)
_scan = c_make_scanner(json.JSONDecoder())


def dumps_compact(obj: Any) -> str:
    """``json.dumps(obj, separators=(",", ":"))`` through the C encoder directly (a few µs less per call).

    Raises:
        TypeError: a value is not JSON-serialisable.
        RecursionError: the object is circular or too deep.
    """
    return "".join(_encode(obj, 0))


def loads_exact(text: str) -> Any:
    """Parse a JSON document that starts at the first character and fills the whole text.

    Raises:
        ValueError: the text is not exactly one JSON value.
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("not a JSON value") from None
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value

REPLY_HEAD = struct.Struct("<cd")
"""Head of a call reply: the kind byte, then the elapsed seconds."""
_REPLY_FRAME = struct.Struct("<Icd")
"""A whole call-reply frame's head: length prefix and reply head in one ``pack``."""

ERROR = b"E"
"""Reply kind of a failed call: the text is the error line."""

_VALUE_OF: dict[bytes, Callable[[str], Any]] = {
    b"S": lambda text: text,  # a str, or any other type shown through str()
    b"I": int,
    b"F": float,
    b"B": lambda text: text == "True",
    b"N": lambda text: None,
    b"J": loads_exact,  # a dict or list: the text is its JSON
    b"U": lambda text: None,  # the text was truncated
}


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed frame."""


class FrameReader:
    """Reads frames from a file descriptor, keeping whatever arrives past the current frame."""

    def __init__(self, fd: int, max_frame: int = 1 << 30) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self._buf = bytearray()

    def buffered(self) -> bool:
        """Whether a whole frame already sits in the buffer (a poll on the descriptor would not see it)."""
        buf = self._buf
        return len(buf) >= HEADER.size and len(buf) >= HEADER.size + HEADER.unpack_from(buf)[0]

    def read(self, wait: Callable[[], None] | None = None) -> bytes | None:
        """Return the next frame's payload, or None at end of file.

        Args:
            wait: called before every blocking read; it raises to give up (the parent's deadline).

        Raises:
            ProtocolError: a frame announces more than ``max_frame`` bytes.
        """
        buf = self._buf
        while True:
            if len(buf) >= HEADER.size:
                (size,) = HEADER.unpack_from(buf)
                if size > self.max_frame:
                    raise ProtocolError(f"frame of {size} bytes exceeds the limit of {self.max_frame}")
                end = HEADER.size + size
                if len(buf) >= end:
                    frame = bytes(buf[HEADER.size:end])
                    del buf[:end]
                    return frame
            if wait is not None:
                wait()
            chunk = os.read(self.fd, READ_CHUNK)
            if not chunk:
                return None
            whole = len(chunk) >= HEADER.size and HEADER.unpack_from(chunk)[0] == len(chunk) - HEADER.size
            if whole and not buf:
                if len(chunk) - HEADER.size > self.max_frame:
                    raise ProtocolError("frame exceeds the size limit")
                return chunk[HEADER.size:]
            buf += chunk


def write_frame(fd: int, payload: bytes) -> None:
    """Write one frame (length prefix and payload), all of it, to a blocking descriptor."""
    write_all(fd, HEADER.pack(len(payload)) + payload)


def write_until(fd: int, data: bytes, deadline: float) -> bool:
    """Write ``data`` completely to a non-blocking descriptor before ``deadline`` (``time.monotonic``).

    Returns:
        False when the deadline passed first (the reader stopped reading).

    Raises:
        OSError: the other end is closed.
    """
    view = memoryview(data)
    written = 0
    poller = None
    while written < len(data):
        try:
            written += os.write(fd, view[written:])
            continue
        except BlockingIOError:
            pass
        if poller is None:  # only a full buffer needs one: the common write goes through at once
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(math.ceil(remaining * 1000)):
            return False
    return True


def write_all(fd: int, data: bytes) -> None:
    """Write ``data`` completely to a blocking descriptor (a pipe may take a large frame in parts)."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)
        while written < len(data):
            written += os.write(fd, view[written:])


def encode_reply(kind: bytes, data: bytes, elapsed_s: float) -> bytes:
    """One call's reply (its text already UTF-8) as a whole frame, length prefix included."""
    return _REPLY_FRAME.pack(REPLY_HEAD.size + len(data), kind, elapsed_s) + data


def decode_reply(payload: bytes) -> tuple[bool, str, Any, float]:
    """Parse one call's reply into ``(ok, text, value, elapsed_s)``.

    Raises:
        ProtocolError: the payload is not a well-formed reply (the worker is untrusted).
    """
    try:
        kind, elapsed = REPLY_HEAD.unpack_from(payload)
        text = payload[REPLY_HEAD.size:].decode("utf-8")
        if kind == ERROR:
            return False, text, None, elapsed
        rebuild = _VALUE_OF[kind]
    except (struct.error, UnicodeDecodeError, KeyError) as exc:
        raise ProtocolError(f"malformed call reply: {type(exc).__name__}") from None
    try:
        return True, text, rebuild(text), elapsed
    except RecursionError:  # deeper than this thread's stack allows: the text stands, as for a cut one
        return True, text, None, elapsed
    except ValueError as exc:
        raise ProtocolError(f"malformed call reply: {type(exc).__name__}") from None
