"""Every sealed object of a repository, read straight from the files, for the key rotation tests.

`sealed_objects` walks the packs on disk (each header and every chunk its header
lists), the index files and the snapshots, and yields each sealed blob with its
associated data. `opens` returns whether one AES-256-GCM key authenticates a blob,
without looking at the flag byte, so it works for every kind of payload.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from atlas_tui.backup.crypto import NONCE_BYTES, MasterKey
from atlas_tui.backup.packs import chunk_associated, pack_path, read_pack_header
from atlas_tui.backup.repository import Repository, sealed_file_associated

_TRAILER = struct.Struct("<I8s")
_HEADER_ASSOCIATED = b"atlas-pack-header"


def sealed_objects(repository: Repository) -> Iterator[tuple[str, bytes, bytes]]:
    """Yield (description, sealed bytes, associated data) for every sealed object in `repository`.

    The pack headers are parsed with `repository.key`, which must open them.
    """
    for pack_id in repository.pack_ids():
        yield from pack_objects(pack_path(repository.path, pack_id), repository.key)
    for path in repository.index_files():
        yield f"index {path.name}", path.read_bytes(), sealed_file_associated("index", path.name)
    for snapshot_id in repository.snapshot_ids():
        path = repository.path / "snapshots" / snapshot_id
        yield f"snapshot {snapshot_id}", path.read_bytes(), sealed_file_associated("snapshots", snapshot_id)


def pack_objects(path: Path, key: MasterKey) -> Iterator[tuple[str, bytes, bytes]]:
    """Yield the sealed header and every sealed chunk of the pack file at `path`."""
    data = path.read_bytes()
    header_length, _magic = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
    header_end = len(data) - _TRAILER.size
    yield f"pack {path.name} header", data[header_end - header_length : header_end], _HEADER_ASSOCIATED
    for entry in read_pack_header(data, key, path.name):
        sealed = data[entry.offset : entry.offset + entry.length]
        yield f"pack {path.name} chunk {entry.chunk_id.hex()}", sealed, chunk_associated(entry.chunk_id)


def opens(encryption_key: bytes, sealed: bytes, associated: bytes) -> bool:
    """Return whether `encryption_key` authenticates `sealed` with `associated`."""
    try:
        AESGCM(encryption_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    except InvalidTag:
        return False
    return True
