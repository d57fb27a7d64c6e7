"""Cutting a snapshot's entries into manifest chunks that the next snapshot can reuse.

A snapshot of 42,000 files has about 18 MB of entries. Stored whole in each
snapshot file, they cost about 4 MiB of compressed data per run even when one
file changed. Instead the entries are cut into pieces, and each piece is stored
as a chunk that contains a JSON array. An unchanged piece is the same chunk as in the
parent snapshot and costs nothing. A changed piece is stored as a delta against
the parent's piece with the same last path.

A piece ends after an entry whose path's CRC-32 is a multiple of
`PIECE_ENTRIES`, or after `MAX_PIECE_ENTRIES` entries. The cut depends on the
paths only, so a new or changed file moves no boundary except its own piece's.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from pydantic import TypeAdapter

from atlas_tui.backup.models import Entry, Snapshot

__all__ = ["MAX_PIECE_ENTRIES", "PIECE_ENTRIES", "encode_piece", "manifest_pieces", "same_piece", "similar_pieces"]

PIECE_ENTRIES = 1024
"""Average entries per piece, about 440 KB of JSON for files with one chunk."""
MAX_PIECE_ENTRIES = 4096

_ENTRIES: TypeAdapter[list[Entry]] = TypeAdapter(list[Entry])


def manifest_pieces(entries: Sequence[Entry]) -> list[Sequence[Entry]]:
    """Return `entries` cut into consecutive pieces by the rule in the module docstring."""
    pieces = []
    start = 0
    for position, entry in enumerate(entries):
        if zlib.crc32(entry.path) % PIECE_ENTRIES == 0 or position + 1 - start >= MAX_PIECE_ENTRIES:
            pieces.append(entries[start : position + 1])
            start = position + 1
    if start < len(entries):
        pieces.append(entries[start:])
    return pieces


def encode_piece(piece: Sequence[Entry]) -> bytes:
    """Serialise one piece as the JSON array that `Entry.from_manifest` reads back."""
    return _ENTRIES.dump_json(list(piece))


def similar_pieces(parent: Snapshot | None) -> dict[bytes, tuple[Sequence[Entry], bytes]]:
    """Map the last path of each of the parent's pieces to that piece and its chunk id.

    The map is empty when the parent keeps its entries in the snapshot file, or when
    other rules than these cut its pieces.
    """
    if parent is None or not parent.manifest_chunks:
        return {}
    pieces = manifest_pieces(parent.entries)
    if len(pieces) != len(parent.manifest_chunks):
        return {}
    return {piece[-1].path: (piece, bytes.fromhex(hex_id)) for piece, hex_id in zip(pieces, parent.manifest_chunks)}


def same_piece(piece: Sequence[Entry], other: Sequence[Entry]) -> bool:
    """Return True when two pieces hold the same entry objects, as when a run reused every entry of its parent."""
    return len(piece) == len(other) and all(mine is theirs for mine, theirs in zip(piece, other))
