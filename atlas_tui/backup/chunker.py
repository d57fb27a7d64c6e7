"""Content-defined chunking of byte streams with the compiled gear-hash chunker.

`Chunker.split(stream)` reads a stream in blocks of `READ_SIZE` bytes and yields
chunks whose boundaries depend on the content, so an insertion moves only the
boundaries near it and unchanged regions dedupe. The boundary search runs in the
C extension `_cdc` (see `_cdc.c` for the rule); this module only keeps the
buffer. Memory stays below `READ_SIZE + max_size` whatever the stream length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from atlas_tui.backup.errors import ChunkerUnavailable
from atlas_tui.backup.models import ChunkerParams

__all__ = ["READ_SIZE", "Chunker", "gear_table", "mask_bits"]

READ_SIZE = 4 * 1024 * 1024
"""Bytes read from a file per call; large enough that the per-call cost vanishes."""

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
        self._table = gear_table(seed)
        self.params = params
        self._strict, self._loose = mask_bits(params)

    def cut_points(self, data: bytes | bytearray | memoryview, *, final: bool) -> list[int]:
        """Return the chunk end offsets in `data`; see `_cdc.cut_points`."""
        params = self.params
        return self._cut_points(
            self._table, data, params.min_size, params.avg_size, params.max_size, self._strict, self._loose, final
        )

    def split(self, stream: BinaryIO) -> Iterator[bytes]:
        """Yield the chunks of `stream` in order, reading it to the end."""
        buffer = bytearray()
        while True:
            block = stream.read(READ_SIZE)
            final = not block
            buffer += block
            if not buffer:
                return
            start = 0
            for end in self.cut_points(buffer, final=final):
                yield bytes(buffer[start:end])
                start = end
            del buffer[:start]
            if final:
                return
