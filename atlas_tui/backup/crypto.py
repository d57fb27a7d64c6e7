"""Keyed hashes, authenticated encryption and compression of repository objects.

Every object in a repository except `config` and the key files is sealed here.
The plaintext is one flag byte (0 stored, 1 zstd, 2 delta) followed by the
payload. A delta chunk's payload is the id of a base chunk and a zstd frame
compressed with the base chunk's plaintext as dictionary. A database chunk in which
a few pages changed then costs a few KiB instead of a whole compressed chunk. It is
encrypted with AES-256-GCM under the master encryption key and a fresh random
96-bit nonce.
The sealed form is `nonce || ciphertext || tag`. The associated data binds a
sealed object to its role and name (a chunk to its id, a snapshot to its id), so
a blob moved to another place fails authentication instead of decrypting.

Chunk ids and file content hashes are keyed BLAKE3 in repositories whose config
names `blake3`, and keyed BLAKE2b in older ones. BLAKE3 runs at several GB/s per
core, BLAKE2b at under 1 GB/s. Compressor, decompressor and cipher objects are
kept per thread, because building them costs more than sealing a small chunk.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import threading
from dataclasses import dataclass
from collections.abc import Callable
from typing import Literal

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from atlas_tui.backup.errors import CorruptData

__all__ = [
    "KEY_BYTES",
    "BaseLoader",
    "ChunkHash",
    "NONCE_BYTES",
    "ContentHasher",
    "MasterKey",
    "chunk_id",
    "open_sealed",
    "reseal",
    "seal",
    "seal_delta",
]

KEY_BYTES = 32
"""Length of every key in the master key: AES-256 and BLAKE2b keys."""
NONCE_BYTES = 12
"""AES-GCM nonce length. NIST SP 800-38D limits random 96-bit nonces to 2^32 objects per key."""
ZSTD_LEVEL = 1
"""zstd level 1 compressed text chunks about 35 % faster than level 3 for a 4 to 5 % larger output
(measured on the corpus of bench/backup_vs_restic.sh)."""

ChunkHash = Literal["blake2b", "blake3"]
"""Keyed hash of chunk ids and content hashes, named in the repository config."""

BaseLoader = Callable[[bytes], bytes]
"""Returns the authenticated plaintext of the chunk with this id, the base of a delta chunk."""

DELTA_MAX_RATIO = 0.5
"""Largest fraction of the chunk's plaintext that a delta frame may take. Above it the
chunk changed so much that a plain compressed copy costs about the same and needs no
base to read."""

DELTA_LEVEL = 6
_MIN_WINDOW_LOG = 17
_MAX_WINDOW_LOG = 27
"""zstd decoders accept windows up to 2^27 bytes without extra settings."""

_STORED = 0
_ZSTD = 1
_DELTA = 2
_ID_BYTES = 32
_CHUNK_PERSON = b"atlas-chunk"
_FILE_PERSON = b"atlas-file"
_CHUNK_CONTEXT = "atlas backup 2026-12 chunk id"
_FILE_CONTEXT = "atlas backup 2026-12 file content"
_local = threading.local()


@dataclass(frozen=True)
class MasterKey:
    """The repository's secret keys, wrapped in each key file."""

    encryption: bytes
    """AES-256-GCM key of every sealed object."""
    chunk_id: bytes
    """BLAKE2b key of chunk ids and file content hashes."""
    chunker: bytes
    """Seed of the chunker's gear table."""
    previous: tuple[bytes, ...] = ()
    """Encryption keys that an unfinished `key rotate` replaced; `open_sealed` falls back to them."""

    @classmethod
    def generate(cls) -> MasterKey:
        """Create a master key from the operating system's random source."""
        return cls(os.urandom(KEY_BYTES), os.urandom(KEY_BYTES), os.urandom(KEY_BYTES))

    def to_bytes(self) -> bytes:
        """Serialise the three keys in order, then the previous encryption keys."""
        return self.encryption + self.chunk_id + self.chunker + b"".join(self.previous)

    @classmethod
    def from_bytes(cls, raw: bytes) -> MasterKey:
        """Parse the output of `to_bytes`.

        Raises:
            CorruptData: `raw` is shorter than three keys or not a whole number of keys.
        """
        if len(raw) < 3 * KEY_BYTES or len(raw) % KEY_BYTES:
            raise CorruptData(
                f"master key has {len(raw)} bytes, expected {3 * KEY_BYTES} plus a multiple of {KEY_BYTES}"
            )
        previous = tuple(raw[start : start + KEY_BYTES] for start in range(3 * KEY_BYTES, len(raw), KEY_BYTES))
        return cls(raw[:KEY_BYTES], raw[KEY_BYTES : 2 * KEY_BYTES], raw[2 * KEY_BYTES : 3 * KEY_BYTES], previous)


def chunk_id(key: MasterKey, data: bytes | memoryview, algorithm: ChunkHash = "blake2b") -> bytes:
    """Return the 32-byte keyed hash of a chunk's plaintext, its id."""
    if algorithm == "blake3":
        return blake3.blake3(data, key=_derived_key(key.chunk_id, _CHUNK_CONTEXT)).digest()
    return hashlib.blake2b(data, digest_size=32, key=key.chunk_id, person=_CHUNK_PERSON).digest()


class ContentHasher:
    """Keyed hash over a whole file's content, fed chunk by chunk."""

    def __init__(self, key: MasterKey, algorithm: ChunkHash = "blake2b") -> None:
        if algorithm == "blake3":
            self._hash: blake3.blake3 | hashlib._Hash = blake3.blake3(key=_derived_key(key.chunk_id, _FILE_CONTEXT))
        else:
            self._hash = hashlib.blake2b(digest_size=32, key=key.chunk_id, person=_FILE_PERSON)

    def update(self, data: bytes | memoryview) -> None:
        """Add the next bytes of the file."""
        self._hash.update(data)

    def hexdigest(self) -> str:
        """Return the hash of everything added so far."""
        return self._hash.hexdigest()


def seal(key: MasterKey, plaintext: bytes | memoryview, associated: bytes, *, compress: bool = True) -> bytes:
    """Compress (when it helps) and encrypt `plaintext`, bound to `associated`."""
    payload = plaintext
    flag = _STORED
    if compress and len(payload):
        packed = _compressor().compress(payload)
        if len(packed) < len(payload):
            payload, flag = packed, _ZSTD
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + _cipher(key.encryption).encrypt(nonce, bytes([flag]) + payload, associated)


def seal_delta(
    key: MasterKey, plaintext: bytes | memoryview, associated: bytes, base_id: bytes, base: bytes
) -> bytes | None:
    """Seal `plaintext` as a delta against the chunk `base_id` whose plaintext is `base`.

    Returns None when the delta would exceed `DELTA_MAX_RATIO` of the plaintext; the
    caller then seals the chunk on its own.
    """
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    # The window must reach back over the whole base, and the match finder must keep
    # all of it. With the hash tables of levels 1 to 3, a 1.5 MB manifest piece with one
    # changed entry took 76 KB, and level 6's hash chains keep it at 230 bytes.
    window = min(_MAX_WINDOW_LOG, max(_MIN_WINDOW_LOG, (len(base) + len(plaintext)).bit_length()))
    parameters = zstandard.ZstdCompressionParameters.from_level(DELTA_LEVEL, window_log=window)
    frame = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=parameters).compress(plaintext)
    if len(frame) > len(plaintext) * DELTA_MAX_RATIO:
        return None
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + _cipher(key.encryption).encrypt(nonce, bytes([_DELTA]) + base_id + frame, associated)


def open_sealed(
    key: MasterKey,
    sealed: bytes | memoryview,
    associated: bytes,
    description: str,
    *,
    base_loader: BaseLoader | None = None,
) -> bytes:
    """Decrypt, authenticate and decompress the output of `seal` or `seal_delta`.

    Args:
        description: Name of the object for the error message, such as `pack 1f2e… chunk 9a8b…`.
        base_loader: Reads the base chunk of a delta chunk; objects other than chunks are never deltas.

    Raises:
        CorruptData: authentication or decompression failed, or a delta's base is unavailable.
    """
    plain = _decrypt(key, sealed, associated, description)
    flag, payload = plain[0], plain[1:]
    if flag == _STORED:
        return payload
    try:
        if flag == _ZSTD:
            return _decompressor().decompress(payload)
        if flag == _DELTA and base_loader is not None and len(payload) > _ID_BYTES:
            base = base_loader(payload[:_ID_BYTES])
            dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
            return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(payload[_ID_BYTES:])
    except zstandard.ZstdError as err:
        raise CorruptData(f"{description}: zstd decompression failed: {err}") from err
    if flag == _DELTA:
        raise CorruptData(f"{description}: a delta chunk was found where no delta is allowed")
    raise CorruptData(f"{description}: unknown compression flag {flag}")


def reseal(key: MasterKey, sealed: bytes | memoryview, associated: bytes, description: str) -> bytes | None:
    """Re-encrypt an object sealed under one of `key.previous` under `key.encryption`, with a fresh nonce.

    The plaintext is kept byte for byte, flag included, so payloads of any flag pass through.

    Returns:
        The new sealed object, or None when the object already opens with `key.encryption`.

    Raises:
        CorruptData: neither the current nor a previous encryption key authenticates the object.
    """
    raw = memoryview(sealed)
    if len(raw) < NONCE_BYTES + 17:
        raise CorruptData(f"{description}: sealed object is {len(raw)} bytes, too short to be valid")
    nonce, body = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    try:
        _cipher(key.encryption).decrypt(nonce, body, associated)
    except InvalidTag:
        pass
    else:
        return None
    for previous in key.previous:
        try:
            plain = _cipher(previous).decrypt(nonce, body, associated)
        except InvalidTag:
            continue
        fresh = secrets.token_bytes(NONCE_BYTES)
        return fresh + _cipher(key.encryption).encrypt(fresh, plain, associated)
    raise CorruptData(f"{description}: authentication failed, the stored bytes were changed or damaged")


def _decrypt(key: MasterKey, sealed: bytes | memoryview, associated: bytes, description: str) -> bytes:
    raw = memoryview(sealed)
    if len(raw) < NONCE_BYTES + 17:
        raise CorruptData(f"{description}: sealed object is {len(raw)} bytes, too short to be valid")
    # The current key first; the previous keys open objects that an unfinished `key rotate` has not reached.
    for encryption in (key.encryption, *key.previous):
        try:
            return _cipher(encryption).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated)
        except InvalidTag:
            continue
    raise CorruptData(f"{description}: authentication failed, the stored bytes were changed or damaged")


@functools.lru_cache(maxsize=16)
def _derived_key(key: bytes, context: str) -> bytes:
    return blake3.blake3(key, derive_key_context=context).digest()


def _compressor() -> zstandard.ZstdCompressor:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def _cipher(key: bytes) -> AESGCM:
    ciphers: dict[bytes, AESGCM] | None = getattr(_local, "ciphers", None)
    if ciphers is None:
        ciphers = _local.ciphers = {}
    cipher = ciphers.get(key)
    if cipher is None:
        cipher = ciphers[key] = AESGCM(key)
    return cipher
