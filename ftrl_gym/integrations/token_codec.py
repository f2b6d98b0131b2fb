"""Text ↔ fixed-length token-id arrays, for RL libraries whose spaces cannot hold text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class TokenCodec(Protocol):
    """What the token-id wrappers need from a tokenizer."""

    vocab_size: int
    """Number of token ids; ids are ``0 .. vocab_size - 1``."""
    pad_id: int
    """Fills observations shorter than the configured length."""
    stop_id: int
    """Ends an action: it and every id after it are ignored when decoding."""

    def encode(self, text: str) -> list[int]:
        """Token ids of a text."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (never raises on ids in range)."""
        ...


class ByteCodec:
    """UTF-8 bytes as tokens: ids 0-255 are bytes, 256 pads and 257 stops. Needs no download."""

    vocab_size = 258
    pad_id = 256
    stop_id = 257

    def encode(self, text: str) -> list[int]:
        """The UTF-8 bytes of ``text``.

        Args:
            text: Any text.

        Returns:
            One id per byte.
        """
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        """Bytes back to text; invalid UTF-8 becomes U+FFFD, pad and stop ids are dropped.

        Args:
            ids: Token ids.

        Returns:
            The text.
        """
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")


class HFCodec:
    """A Hugging Face tokenizer as a codec (e.g. the SmolLM2 tokenizer from ``ftrl_gym.agents.models``)."""

    def __init__(self, tokenizer: Any) -> None:
        """Wrap a tokenizer.

        Args:
            tokenizer: A ``transformers`` tokenizer, or a local folder to load one from (offline).
        """
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)
        self.stop_id = int(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.stop_id)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without special tokens added.

        Args:
            text: Any text.

        Returns:
            The ids.
        """
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the ids.

        Args:
            ids: Token ids.

        Returns:
            The decoded text.
        """
        return self.tokenizer.decode([int(i) for i in ids])


def encode_padded(codec: TokenCodec, text: str, length: int) -> np.ndarray:
    """Encode ``text`` into exactly ``length`` ids: the first ``length`` ids, padded with ``pad_id``.

    Args:
        codec: The tokenizer.
        text: The text to encode.
        length: Output length.

    Returns:
        An ``int64`` array of shape ``(length,)``.
    """
    ids = codec.encode(text)[:length]
    out = np.full(length, codec.pad_id, dtype=np.int64)
    out[: len(ids)] = ids
    return out


def decode_action(codec: TokenCodec, ids: Sequence[int] | np.ndarray) -> str:
    """Decode an action: the ids before the first ``stop_id``, pad ids dropped.

    Args:
        codec: The tokenizer.
        ids: The action's token ids.

    Returns:
        The response text.
    """
    kept = []
    for token in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
        if token == codec.stop_id:
            break
        if token != codec.pad_id:
            kept.append(token)
    return codec.decode(kept)


def encode_action(codec: TokenCodec, text: str, length: int) -> np.ndarray:
    """The action array that :func:`decode_action` turns back into ``text`` (if it fits).

    Args:
        codec: The tokenizer.
        text: The response text.
        length: Action length; the text is cut to ``length - 1`` ids and ends with ``stop_id``.

    Returns:
        An ``int64`` array of shape ``(length,)``.
    """
    ids = codec.encode(text)[: length - 1]
    out = np.full(length, codec.stop_id, dtype=np.int64)
    out[: len(ids)] = ids
    return out
