"""Keyed hashes, authenticated encryption and compression of repository objects.

Every object in a repository except `config` and the key files is sealed here.
The plaintext is one flag byte (0 stored, 1 zstd) followed by the payload. It is
encrypted with AES-256-GCM under the master encryption key and a fresh random
96-bit nonce.
The sealed form is `nonce || ciphertext || tag`. The associated data binds a
sealed object to its role and name (a chunk to its id, a snapshot to its id), so
a blob moved to another place fails authentication instead of decrypting.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from atlas_tui.backup.errors import CorruptData

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "ContentHasher",
    "MasterKey",
    "chunk_id",
    "open_sealed",
    "seal",
]

KEY_BYTES = 32
"""Length of every key in the master key: AES-256 and BLAKE2b keys."""
NONCE_BYTES = 12
"""AES-GCM nonce length. NIST SP 800-38D limits random 96-bit nonces to 2^32 objects per key."""
ZSTD_LEVEL = 3
"""zstd level 3 (the library default) compresses at several hundred MB/s per core."""

_STORED = 0
_ZSTD = 1
_CHUNK_PERSON = b"atlas-chunk"
_FILE_PERSON = b"atlas-file"


@dataclass(frozen=True)
class MasterKey:
    """The repository's secret keys, wrapped in each key file."""

    encryption: bytes
    """AES-256-GCM key of every sealed object."""
    chunk_id: bytes
    """BLAKE2b key of chunk ids and file content hashes."""
    chunker: bytes
    """Seed of the chunker's gear table."""

    @classmethod
    def generate(cls) -> MasterKey:
        """Create a master key from the operating system's random source."""
        return cls(os.urandom(KEY_BYTES), os.urandom(KEY_BYTES), os.urandom(KEY_BYTES))

    def to_bytes(self) -> bytes:
        """Serialise the three keys in order."""
        return self.encryption + self.chunk_id + self.chunker

    @classmethod
    def from_bytes(cls, raw: bytes) -> MasterKey:
        """Parse the output of `to_bytes`.

        Raises:
            CorruptData: `raw` has the wrong length.
        """
        if len(raw) != 3 * KEY_BYTES:
            raise CorruptData(f"master key has {len(raw)} bytes, expected {3 * KEY_BYTES}")
        return cls(raw[:KEY_BYTES], raw[KEY_BYTES : 2 * KEY_BYTES], raw[2 * KEY_BYTES :])


def chunk_id(key: MasterKey, data: bytes | memoryview) -> bytes:
    """Return the 32-byte keyed BLAKE2b id of a chunk's plaintext."""
    return hashlib.blake2b(data, digest_size=32, key=key.chunk_id, person=_CHUNK_PERSON).digest()


class ContentHasher:
    """Keyed BLAKE2b over a whole file's content, fed chunk by chunk."""

    def __init__(self, key: MasterKey) -> None:
        self._hash = hashlib.blake2b(digest_size=32, key=key.chunk_id, person=_FILE_PERSON)

    def update(self, data: bytes | memoryview) -> None:
        """Add the next bytes of the file."""
        self._hash.update(data)

    def hexdigest(self) -> str:
        """Return the hash of everything added so far."""
        return self._hash.hexdigest()


def seal(key: MasterKey, plaintext: bytes | memoryview, associated: bytes, *, compress: bool = True) -> bytes:
    """Compress (when it helps) and encrypt `plaintext`, bound to `associated`."""
    payload = bytes(plaintext)
    flag = _STORED
    if compress and payload:
        packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(payload)
        if len(packed) < len(payload):
            payload, flag = packed, _ZSTD
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key.encryption).encrypt(nonce, bytes([flag]) + payload, associated)


def open_sealed(key: MasterKey, sealed: bytes | memoryview, associated: bytes, description: str) -> bytes:
    """Decrypt, authenticate and decompress the output of `seal`.

    Args:
        description: Name of the object for the error message, such as `pack 1f2e… chunk 9a8b…`.

    Raises:
        CorruptData: authentication or decompression failed.
    """
    raw = bytes(sealed)
    if len(raw) < NONCE_BYTES + 17:
        raise CorruptData(f"{description}: sealed object is {len(raw)} bytes, too short to be valid")
    try:
        plain = AESGCM(key.encryption).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated)
    except InvalidTag as err:
        raise CorruptData(f"{description}: authentication failed, the stored bytes were changed or damaged") from err
    flag, payload = plain[0], plain[1:]
    if flag == _STORED:
        return payload
    if flag != _ZSTD:
        raise CorruptData(f"{description}: unknown compression flag {flag}")
    try:
        return zstandard.ZstdDecompressor().decompress(payload)
    except zstandard.ZstdError as err:
        raise CorruptData(f"{description}: zstd decompression failed: {err}") from err
