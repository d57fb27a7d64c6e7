"""Cutting a snapshot's entries into manifest chunks that the next snapshot can reuse.

A snapshot of 42,000 files has about 18 MB of entries. Stored whole in each
snapshot file, they cost about 4 MiB of compressed data per run even when one
file changed. Instead the entries are cut into pieces, and each piece is stored
as a chunk that contains a JSON array. An unchanged piece is the same chunk as in
the parent snapshot and costs nothing. A changed piece is stored as a delta
against the parent's piece with the same last path.

A piece ends after an entry whose path's CRC-32 is a multiple of
`PIECE_ENTRIES`, or after `MAX_PIECE_ENTRIES` entries. The cut depends on the
paths only, so a new or changed file moves no boundary except its own piece's.

The snapshot file also lists each piece's last path, entry count and a
fingerprint of its entries' paths and stat fields (`ManifestPiece`). A run
computes the same fingerprint from its own `lstat` results. When it equals the
parent's for the piece with the same last path, nothing in the piece changed, so
the run takes the parent's chunk without reading the piece or any of its files.
"""

from __future__ import annotations

import hashlib
import logging
import stat
import struct
import zlib
from collections.abc import Iterable, Sequence

from pydantic import TypeAdapter

from atlas_tui.backup.models import Entry, EntryType, ManifestPiece, Snapshot
from atlas_tui.backup.repository import Repository

__all__ = [
    "MAX_PIECE_ENTRIES",
    "PIECE_ENTRIES",
    "ParentManifest",
    "encode_piece",
    "entry_key",
    "fingerprint",
    "is_cut",
    "manifest_pieces",
    "stat_fields",
]

PIECE_ENTRIES = 1024
"""Average entries per piece, about 440 KB of JSON for files with one chunk."""
MAX_PIECE_ENTRIES = 4096

_ENTRIES: TypeAdapter[list[Entry]] = TypeAdapter(list[Entry])
_KEY = struct.Struct("<BIIIQqqQ")
_SOURCE = struct.Struct("<QqQ")
_KINDS: dict[str, int] = {
    "file": 1, "dir": 2, "symlink": 3, "fifo": 4, "socket": 5, "chardev": 6, "blockdev": 7,
}

logger = logging.getLogger(__name__)


def is_cut(path: bytes, length: int) -> bool:
    """Return True when a piece of `length` entries ends with the entry at `path`."""
    return zlib.crc32(path) % PIECE_ENTRIES == 0 or length >= MAX_PIECE_ENTRIES


def manifest_pieces(entries: Sequence[Entry]) -> list[Sequence[Entry]]:
    """Return `entries` cut into consecutive pieces by the rule in the module docstring."""
    pieces = []
    start = 0
    for position, entry in enumerate(entries):
        if is_cut(entry.path, position + 1 - start):
            pieces.append(entries[start : position + 1])
            start = position + 1
    if start < len(entries):
        pieces.append(entries[start:])
    return pieces


def encode_piece(piece: Sequence[Entry]) -> bytes:
    """Serialise one piece as the JSON array that `Entry.from_manifest` reads back."""
    return _ENTRIES.dump_json(list(piece))


def entry_key(entry: Entry) -> bytes:
    """Return the bytes that stand for an entry in a fingerprint.

    A database entry counts with its file's size and its `-wal` state (`source`), not
    with the size of its copy, as the files cache compares it.
    """
    size = entry.size if entry.type == "file" else 0
    extra = b""
    if entry.sqlite and entry.source:
        size = entry.source[0]
        extra = _SOURCE.pack(*entry.source[1:4])
    fields = _KEY.pack(
        _KINDS[entry.type], entry.mode, entry.uid, entry.gid, size, entry.mtime_ns, entry.ctime_ns, entry.inode
    )
    return entry.path + b"\0" + fields + extra


def stat_fields(info: object, kind: EntryType, source: Sequence[int] | None = None) -> bytes:
    """Return the part after the path of what `entry_key` returns for an entry with these `lstat` fields.

    Args:
        source: For a database, the `source` list its entry would get.
    """
    size = info.st_size if kind == "file" else 0  # type: ignore[attr-defined]
    fields = _KEY.pack(
        _KINDS[kind], stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,  # type: ignore[attr-defined]
        size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino,  # type: ignore[attr-defined]
    )
    return b"\0" + fields + (_SOURCE.pack(*source[1:4]) if source else b"")


def fingerprint(keys: Iterable[bytes]) -> str:
    """Hash the keys of a piece's entries, in order."""
    return hashlib.blake2b(b"".join(keys), digest_size=16, person=b"atlas-piece").hexdigest()


class ParentManifest:
    """The parent snapshot's manifest pieces, read one at a time when a run needs them.

    Snapshots written before `manifest_pieces` existed are read whole at once, and
    their pieces are found by cutting their entries again.
    """

    def __init__(self, repository: Repository, snapshot: Snapshot) -> None:
        self.repository = repository
        self.snapshot = snapshot
        self._pieces: dict[bytes, tuple[ManifestPiece | None, str]] = {}
        self._everything: list[Entry] | None = None
        chunks, pieces = snapshot.manifest_chunks, snapshot.manifest_pieces
        if chunks is not None and pieces is not None and len(chunks) == len(pieces):
            self._pieces = {piece.last_path: (piece, hex_id) for piece, hex_id in zip(pieces, chunks)}
            return
        entries = self.everything()
        if chunks is not None:
            cut = manifest_pieces(entries)
            if len(cut) == len(chunks):
                self._pieces = {piece[-1].path: (None, hex_id) for piece, hex_id in zip(cut, chunks)}

    def piece(self, last_path: bytes) -> tuple[ManifestPiece | None, str] | None:
        """Return the parent's piece that ends with `last_path` and its chunk id, or None.

        The `ManifestPiece` is None for a parent written before pieces were described.
        """
        return self._pieces.get(last_path)

    def entries(self, last_path: bytes) -> list[Entry]:
        """Return the entries of the parent's piece that ends with `last_path`, or all of them.

        All entries come back when no piece ends there, as after a boundary entry was
        added or removed. The caller then has every path that the piece might contain.

        Raises:
            CorruptData: the piece's chunk cannot be read.
        """
        if self._everything is not None:
            return self._everything
        found = self._pieces.get(last_path)
        if found is None:
            logger.debug("parent piece not found, reading the whole parent snapshot=%s", self.snapshot.id)
            return self.everything()
        return self.repository.manifest_piece(self.snapshot.id, bytes.fromhex(found[1]))

    def everything(self) -> list[Entry]:
        """Return every entry of the parent, read once.

        Raises:
            CorruptData: a manifest chunk cannot be read.
        """
        if self._everything is None:
            self._everything = self.repository.load_snapshot(self.snapshot.id).entries
        return self._everything
