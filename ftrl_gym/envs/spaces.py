"""A Gymnasium text space wide enough for real LLM text, with shared-memory support for async vector envs."""

from __future__ import annotations

import multiprocessing as mp
import string
from collections.abc import Sequence
from ctypes import c_int32
from multiprocessing.sharedctypes import SynchronizedArray
from types import ModuleType
from typing import Any, overload

import numpy as np
from gymnasium.spaces import Text
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

SAMPLE_CHARSET: str = (
    string.printable
    + "àáâäæçèéêëíîïñóôöøœßúûüÿÀÉÖÜ"
    + "αβγδεθλμπσφωΩΔ"
    + "абвгдежзиклмнопрстуфхцчшщыэюяЖЩЯ"
    + "你好世界中文数据工具调用天气城市"
    + "こんにちはカタカナ한국어"
    + "،؟مرحبا שלום"
    + "€£¥°±×÷≤≥≠∞√∑→←↑↓…–—‘’“”«»•"
    + "😀😂🤖🚀✅❌🔥🌍"
)
"""Characters :meth:`LLMText.sample` draws from: printable ASCII plus accents, Greek, Cyrillic, CJK,
Arabic, Hebrew, symbols and emoji. Membership is not limited to it."""

class LLMText(Text):
    """Any Python string of at most ``max_length`` characters: what an LLM reads or writes.

    Gymnasium's :class:`~gymnasium.spaces.Text` only contains strings over its charset (alphanumerics
    by default), so real model text would fall outside it. ``contains`` here accepts every unicode
    string within the length bounds; ``sample`` draws from :data:`SAMPLE_CHARSET` with lengths up to
    ``sample_max_length`` (sampling megabyte strings would make random agents useless).

    Async vector envs move observations through shared memory as unicode code points (one int32
    per character after a length slot), registered below for this class.
    """

    def __init__(
        self,
        max_length: int,
        *,
        min_length: int = 0,
        sample_max_length: int = 256,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        """Create the space.

        Args:
            max_length: Longest string in the space, in characters.
            min_length: Shortest string in the space (0: the empty string is allowed).
            sample_max_length: Longest string :meth:`sample` draws by default.
            seed: Seed of the space's own sampling generator.
        """
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)
        self.sample_max_length = max(self.min_length, min(int(sample_max_length), self.max_length))

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a string of allowed length (any characters)."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """Draw a string; without a length in ``mask``/``probability`` it is at most ``sample_max_length``.

        Args:
            mask: As :meth:`Text.sample`: ``(length, charset mask)`` over :data:`SAMPLE_CHARSET`.
            probability: As :meth:`Text.sample`: ``(length, charset probabilities)``.

        Returns:
            The sampled string.
        """
        if mask is None and probability is None:
            length = int(self.np_random.integers(self.min_length, self.sample_max_length + 1))
            mask = (length, None)
        return super().sample(mask=mask, probability=probability)

    def __repr__(self) -> str:
        """A short representation (the sampling charset is long)."""
        return f"LLMText(min_length={self.min_length}, max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        """Equal to another LLMText with the same bounds."""
        return (
            isinstance(other, LLMText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )


@create_shared_memory.register(LLMText)
def _create_shared_memory(space: LLMText, n: int = 1, ctx: ModuleType = mp) -> SynchronizedArray[c_int32]:
    return ctx.Array(np.dtype(np.int32).char, n * (space.max_length + 1))


@write_to_shared_memory.register(LLMText)
def _write_shared_memory(
    space: LLMText, index: int, value: str, shared_memory: SynchronizedArray[c_int32]
) -> None:
    """Row layout: ``[length, code point 0, code point 1, ...]``; only the used part is written."""
    row_size = space.max_length + 1
    codes = np.frombuffer(value.encode("utf-32-le", errors="surrogatepass"), dtype=np.int32)
    row = np.frombuffer(shared_memory.get_obj(), dtype=np.int32)[index * row_size : (index + 1) * row_size]
    row[0] = len(codes)
    row[1 : 1 + len(codes)] = codes


class SharedTextBatch(Sequence[str]):
    """A live view of the texts an async vector env's workers wrote to shared memory.

    Gymnasium reads the observation buffer once and relies on array views staying current, which plain
    strings cannot do; this view decodes on access instead. ``deepcopy`` (what ``AsyncVectorEnv`` does
    with ``copy=True``, the default) turns it into a plain tuple of strings.
    """

    def __init__(self, shared_memory: SynchronizedArray[c_int32], n: int, row_size: int) -> None:
        self._rows = np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape((n, row_size))

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        row = self._rows[index]
        return row[1 : 1 + row[0]].tobytes().decode("utf-32-le", errors="surrogatepass")

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return f"SharedTextBatch({tuple(self)!r})"


@read_from_shared_memory.register(LLMText)
def _read_shared_memory(
    space: LLMText, shared_memory: SynchronizedArray[c_int32], n: int = 1
) -> SharedTextBatch:
    return SharedTextBatch(shared_memory, n, space.max_length + 1)
