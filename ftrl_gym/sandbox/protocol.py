"""Length-prefixed JSON frames over raw pipe file descriptors (both directions; nothing is pickled)."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

HEADER = struct.Struct(">I")
"""A frame is a 4-byte big-endian payload length, then the payload (UTF-8 JSON)."""

READ_CHUNK = 1 << 16


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed frame."""


class FrameReader:
    """Reads frames from a file descriptor, keeping whatever arrives past the current frame."""

    def __init__(self, fd: int, max_frame: int = 1 << 30) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self._buf = bytearray()

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
            if not buf and len(chunk) >= HEADER.size and HEADER.unpack_from(chunk)[0] == len(chunk) - HEADER.size:
                if len(chunk) - HEADER.size > self.max_frame:
                    raise ProtocolError("frame exceeds the size limit")
                return chunk[HEADER.size:]
            buf += chunk


def write_frame(fd: int, payload: bytes, wait: Callable[[], None] | None = None) -> None:
    """Write one frame, all of it.

    Args:
        fd: a blocking pipe descriptor.
        payload: the frame's content.
        wait: called before each further write when the pipe took only part of the frame.
    """
    data = memoryview(HEADER.pack(len(payload)) + payload)
    written = os.write(fd, data)
    while written < len(data):
        if wait is not None:
            wait()
        written += os.write(fd, data[written:])
