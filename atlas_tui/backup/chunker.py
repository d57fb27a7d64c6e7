"""Content-defined chunking of byte streams with the compiled gear-hash chunker.

`Chunker.split(stream)` reads a stream in blocks of `READ_SIZE` bytes and yields
chunks whose boundaries depend on the content, so an insertion moves only the
boundaries near it and unchanged regions dedupe. The boundary search runs in the
C extension `_cdc` (see `_cdc.c` for the rule); this module only keeps the
buffer. Memory stays below `READ_SIZE + max_size` whatever the stream length.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from typing import Protocol

from atlas_tui.backup.errors import ChunkerUnavailable
from atlas_tui.backup.models import ChunkerParams

__all__ = ["READ_SIZE", "Chunker", "Readable", "gear_table", "mask_bits"]

READ_SIZE = 1024 * 1024
"""Bytes read from a file per call. Larger blocks saved no time once an unfinished chunk
is not searched again, and smaller ones keep the blocks in flight few."""

_TABLE_PERSON = b"atlas-gear"


def gear_table(seed: bytes) -> bytes:
    """Derive the 256 little-endian uint64 gear values from the repository's chunker key."""
    return b"".join(
        hashlib.blake2b(index.to_bytes(2, "little"), digest_size=8, key=seed, person=_TABLE_PERSON).digest()
        for index in range(256)
    )


def mask_bits(params: ChunkerParams) -> tuple[int, int]:
    """Return how many top hash bits must be zero before and after `avg_size`.

    Two bits more than log2(avg_size) before it and two fewer after it pull chunk
    sizes towards the average.
    """
    bits = params.avg_size.bit_length() - 1
    return bits + 2, max(bits - 2, 1)


class Readable(Protocol):
    """A source of bytes, such as a file opened in binary mode."""

    def read(self, size: int, /) -> bytes:
        """Return up to `size` bytes, or an empty result at the end."""
        ...


class Chunker:
    """Splits streams into content-defined chunks for one repository."""

    def __init__(self, seed: bytes, params: ChunkerParams) -> None:
        try:
            from atlas_tui.backup import _cdc
        except ImportError as err:
            raise ChunkerUnavailable(
                "the compiled chunker atlas_tui.backup._cdc is missing; "
                "run `pip install -e .` (needs gcc and the Python headers)"
            ) from err
        self._cut_points = _cdc.cut_points
        self._read_small_files = _cdc.read_small_files
        self._table = gear_table(seed)
        self.params = params
        self._strict, self._loose = mask_bits(params)

    def cut_points(self, data: bytes | bytearray | memoryview, *, final: bool, scanned: int = 0) -> list[int]:
        """Return the chunk end offsets in `data`; see `_cdc.cut_points`.

        Args:
            scanned: Bytes at the start of `data` that an earlier call searched without
                a boundary, the unfinished chunk it left.
        """
        params = self.params
        return self._cut_points(
            self._table, data, params.min_size, params.avg_size, params.max_size, self._strict, self._loose, final,
            scanned,
        )

    def read_small(self, paths: list[bytes]) -> list[tuple[os.stat_result, bytes | None] | OSError]:
        """Return the `lstat` of each path and its bytes when it is a regular file that is one whole chunk.

        A file of at most `min_size` bytes is always a single chunk, so it is read in one
        call without looking for boundaries; see `_cdc.read_small_files`. The bytes are
        None when the path is not a regular file or has more than `min_size` bytes. The
        stat result is then the `lstat` of the path, or the `fstat` of what was opened. A
        path that cannot be looked at, opened or read gives its `OSError` instead.
        """
        return [
            result if isinstance(result, OSError) else (os.stat_result(result[0]), result[1])
            for result in self._read_small_files(paths, self.params.min_size)
        ]

    def split(
        self,
        stream: Readable,
        *,
        size_hint: int | None = None,
        on_block: Callable[[bytes], object] | None = None,
    ) -> Iterator[memoryview]:
        """Yield the chunks of `stream` in order, reading it to the end.

        The chunks are read-only views into immutable `bytes` blocks, so they stay
        valid for as long as the caller keeps them, and cutting copies no data.

        Args:
            size_hint: Expected stream length. A small file is then read with one
                buffer of its size instead of a `READ_SIZE` buffer.
            on_block: Called with each block read, in order, such as a hash's `update`.
        """
        tail = b""
        whole = size_hint is not None and size_hint < READ_SIZE
        read_size = size_hint + 1 if whole and size_hint is not None else READ_SIZE
        while True:
            block = stream.read(read_size)
            # A first read of a small file that returns exactly the expected size, one
            # byte short of what it asked for, reached the end. That saves one empty read
            # per small file.
            final = not block or (whole and len(block) == size_hint)
            whole = False
            read_size = READ_SIZE
            if on_block is not None and block:
                on_block(block)
            data = tail + block if tail else block
            if not data:
                return
            view = memoryview(data)
            start = 0
            for end in self.cut_points(data, final=final, scanned=len(tail)):
                yield view[start:end]
                start = end
            tail = data[start:]
            if final:
                return
