"""Pack files: sealed chunks followed by a sealed header that lists them.

Layout of `data/<first two hex digits>/<pack id>`:

    magic "ATLASPK1"
    sealed chunk, sealed chunk, ...          (each: nonce, ciphertext, tag)
    sealed header                            (list of chunk id, offset, length, raw length, base)
    header length (uint32 little-endian), magic "ATLASPKH"

The pack id is the SHA-256 of the whole file, so a flipped byte anywhere shows as
a name mismatch before any decryption. The header lets `rebuild_index` recover the
index from the packs alone.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

from atlas_tui.backup.atomic import AtomicFile
from atlas_tui.backup.crypto import MasterKey, open_sealed, seal
from atlas_tui.backup.errors import CorruptData

__all__ = ["PackEntry", "PackInfo", "PackWriter", "chunk_associated", "pack_path", "read_pack_header"]

PACK_MAGIC = b"ATLASPK1"
TRAILER_MAGIC = b"ATLASPKH"
_TRAILER = struct.Struct("<I8s")
_HEADER_ENTRY = struct.Struct("<32sQII")
_HEADER_ENTRY_WITH_BASE = struct.Struct("<32sQII32s")
_HEADER_WITH_BASES = b"ATLASHB1"
"""Marker that starts a header whose records carry a base chunk id (zeros for none). It is
written only when a pack contains a delta chunk, so packs without one keep the first layout."""
_NO_BASE = bytes(32)
_HEADER_ASSOCIATED = b"atlas-pack-header"


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Location of one sealed chunk in a pack."""

    chunk_id: bytes
    offset: int
    length: int
    """Sealed length in bytes."""
    raw_length: int
    """Plaintext length in bytes."""
    base: bytes | None = None
    """Id of the chunk a delta chunk is stored against, None for a chunk stored on its own."""


@dataclass
class PackInfo:
    """A finished pack and the chunks in it."""

    pack_id: str
    entries: list[PackEntry] = field(default_factory=list)


def pack_path(repository: Path, pack_id: str) -> Path:
    """Return the path of a pack in the repository."""
    return repository / "data" / pack_id[:2] / pack_id


def chunk_associated(chunk_id: bytes) -> bytes:
    """Return the associated data that binds a sealed chunk to its id."""
    return b"atlas-chunk:" + chunk_id


class PackWriter:
    """Appends sealed chunks to a temporary pack file and names it by its hash on `finish`."""

    def __init__(self, repository: Path, key: MasterKey) -> None:
        self._repository = repository
        self._key = key
        self._file = AtomicFile(repository / "data" / "pending")
        self._hash = hashlib.sha256()
        self._entries: list[PackEntry] = []
        self.size = 0
        """Bytes written so far."""
        self._append(PACK_MAGIC)

    def add(self, chunk_id: bytes, plaintext: bytes) -> int:
        """Seal a chunk into the pack and return its sealed length."""
        sealed = seal(self._key, plaintext, chunk_associated(chunk_id))
        self.add_sealed(chunk_id, sealed, len(plaintext))
        return len(sealed)

    def add_sealed(self, chunk_id: bytes, sealed: bytes | memoryview, raw_length: int, base: bytes | None = None) -> None:
        """Append a chunk that the caller sealed with `chunk_associated(chunk_id)`.

        Args:
            base: The base chunk's id when the chunk is sealed as a delta.
        """
        self._entries.append(PackEntry(chunk_id, self.size, len(sealed), raw_length, base))
        self._append(sealed)

    def finish(self) -> PackInfo:
        """Write the header, fsync and rename the pack to its content hash."""
        if any(entry.base for entry in self._entries):
            table = _HEADER_WITH_BASES + b"".join(
                _HEADER_ENTRY_WITH_BASE.pack(e.chunk_id, e.offset, e.length, e.raw_length, e.base or _NO_BASE)
                for e in self._entries
            )
        else:
            table = b"".join(
                _HEADER_ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_length) for e in self._entries
            )
        header = seal(self._key, table, _HEADER_ASSOCIATED)
        self._append(header)
        self._append(_TRAILER.pack(len(header), TRAILER_MAGIC))
        pack_id = self._hash.hexdigest()
        self._file.path = pack_path(self._repository, pack_id)
        self._file.commit()
        return PackInfo(pack_id, list(self._entries))

    def discard(self) -> None:
        """Remove the unfinished pack."""
        self._file.discard()

    def _append(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)


def read_pack_header(data: bytes, key: MasterKey, pack_id: str) -> list[PackEntry]:
    """Parse and authenticate the header of a pack whose bytes are `data`.

    Raises:
        CorruptData: the magic, trailer or header is damaged.
    """
    if not data.startswith(PACK_MAGIC) or len(data) < len(PACK_MAGIC) + _TRAILER.size:
        raise CorruptData(f"pack {pack_id}: missing pack magic")
    header_length, magic = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
    header_start = len(data) - _TRAILER.size - header_length
    if magic != TRAILER_MAGIC or header_start < len(PACK_MAGIC):
        raise CorruptData(f"pack {pack_id}: damaged trailer")
    table = open_sealed(key, data[header_start : len(data) - _TRAILER.size], _HEADER_ASSOCIATED, f"pack {pack_id} header")
    if table.startswith(_HEADER_WITH_BASES) and (len(table) - len(_HEADER_WITH_BASES)) % _HEADER_ENTRY_WITH_BASE.size == 0:
        records = memoryview(table)[len(_HEADER_WITH_BASES) :]
        return [
            PackEntry(chunk_id, offset, length, raw_length, None if base == _NO_BASE else base)
            for chunk_id, offset, length, raw_length, base in _HEADER_ENTRY_WITH_BASE.iter_unpack(records)
        ]
    if len(table) % _HEADER_ENTRY.size:
        raise CorruptData(f"pack {pack_id}: header length {len(table)} is not a whole number of entries")
    return [PackEntry(*fields) for fields in _HEADER_ENTRY.iter_unpack(table)]
