"""Key files: the master key sealed under keys derived from passphrases with scrypt.

Each file under `keys/` contains the same master key, sealed with AES-256-GCM under
a key that scrypt derives from one passphrase and the file's salt. Adding a
passphrase adds a file, and removing one deletes a file, so data is never
re-encrypted for either. `key rotate` seals a master key with a new encryption
key into the file of the passphrase in use (`rewrite_key_file`). The associated
data binds a key file to its repository id and key id, so a key file copied from
another repository does not open here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from atlas_tui.backup.atomic import TEMP_PREFIX, write_atomic
from atlas_tui.backup.crypto import KEY_BYTES, NONCE_BYTES, MasterKey
from atlas_tui.backup.errors import CorruptData, KeyFilesMissing, WrongPassphrase
from atlas_tui.backup.models import KdfParams, KeyFile

__all__ = ["create_key_file", "list_key_files", "open_master_key", "rewrite_key_file"]

_SCRYPT_MAX_MEMORY = 1024 * 1024 * 1024

logger = logging.getLogger(__name__)


def create_key_file(
    keys_dir: Path, repository_id: str, master: MasterKey, passphrase: bytes, *, now: float, scrypt_n: int = 2**15
) -> KeyFile:
    """Seal `master` under `passphrase` and write it as a new file in `keys_dir`."""
    kdf = KdfParams(salt=os.urandom(16), n=scrypt_n)
    key_id = secrets.token_hex(8)
    sealed = _seal_master(master, passphrase, kdf, _associated(repository_id, key_id))
    key_file = KeyFile(id=key_id, created=now, hostname=socket.gethostname(), kdf=kdf, sealed_master=sealed)
    write_atomic(keys_dir / key_id, key_file.model_dump_json(indent=2).encode())
    return key_file


def rewrite_key_file(keys_dir: Path, repository_id: str, key_id: str, master: MasterKey, passphrase: bytes) -> KeyFile:
    """Seal `master` under `passphrase` again into the existing key file `key_id`, replacing it atomically.

    The id, creation time, host and scrypt cost stay. The salt and the nonce are new.

    Raises:
        CorruptData: the key file is not valid JSON of the expected shape.
        FileNotFoundError: no key file has this id.
    """
    path = keys_dir / key_id
    try:
        current = KeyFile.model_validate_json(path.read_bytes())
    except ValidationError as err:
        raise CorruptData(f"key file {path} is invalid: {err.error_count()} problems") from err
    kdf = current.kdf.model_copy(update={"salt": os.urandom(16)})
    sealed = _seal_master(master, passphrase, kdf, _associated(repository_id, key_id))
    key_file = current.model_copy(update={"kdf": kdf, "sealed_master": sealed})
    write_atomic(path, key_file.model_dump_json(indent=2).encode())
    return key_file


def open_master_key(
    keys_dir: Path, repository_id: str, passphrase: bytes, repository: str, source: str | None = None
) -> tuple[MasterKey, str]:
    """Return the master key and the id of the first key file that opens with `passphrase`.

    Args:
        source: Where the passphrase came from, for the message of `WrongPassphrase`.

    Raises:
        KeyFilesMissing: `keys_dir` is missing or contains no key file.
        WrongPassphrase: no key file opens with it.
        CorruptData: a key file is not valid JSON of the expected shape.
    """
    try:
        paths = sorted(path for path in keys_dir.iterdir() if not path.name.startswith(TEMP_PREFIX))
    except (FileNotFoundError, NotADirectoryError):
        paths = []
    if not paths:
        raise KeyFilesMissing(repository, str(keys_dir))
    for path in paths:
        try:
            key_file = KeyFile.model_validate_json(path.read_bytes())
        except ValidationError as err:
            raise CorruptData(f"key file {path} is invalid: {err.error_count()} problems") from err
        wrapping = _derive(passphrase, key_file.kdf)
        sealed = key_file.sealed_master
        try:
            raw = AESGCM(wrapping).decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _associated(repository_id, key_file.id)
            )
        except InvalidTag:
            continue
        logger.debug("opened key key_id=%s", key_file.id)
        return MasterKey.from_bytes(raw), key_file.id
    raise WrongPassphrase(repository, source)


def list_key_files(keys_dir: Path) -> list[KeyFile]:
    """Read every key file in `keys_dir`, oldest first.

    Raises:
        CorruptData: a key file is not valid JSON of the expected shape.
    """
    key_files = []
    for path in sorted(keys_dir.iterdir()):
        if path.name.startswith(TEMP_PREFIX):
            continue
        try:
            key_files.append(KeyFile.model_validate_json(path.read_bytes()))
        except ValidationError as err:
            raise CorruptData(f"key file {path} is invalid: {err.error_count()} problems") from err
    return sorted(key_files, key=lambda key_file: (key_file.created, key_file.id))


def _seal_master(master: MasterKey, passphrase: bytes, kdf: KdfParams, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(_derive(passphrase, kdf)).encrypt(nonce, master.to_bytes(), associated)


def _derive(passphrase: bytes, kdf: KdfParams) -> bytes:
    return hashlib.scrypt(
        passphrase, salt=kdf.salt, n=kdf.n, r=kdf.r, p=kdf.p, maxmem=_SCRYPT_MAX_MEMORY, dklen=KEY_BYTES
    )


def _associated(repository_id: str, key_id: str) -> bytes:
    return f"atlas-key:{repository_id}:{key_id}".encode()
