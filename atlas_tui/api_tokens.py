"""Bearer tokens of the HTTP API: scopes, creation, revocation and the daemon's local token file.

`atlas api token create|revoke|list` (`atlas_tui.cli_api`) and the daemon call these
functions. The API's auth middleware (`atlas_tui.api.auth`) checks requests against
the active tokens in `storage.tokens`. Invariants: a token is 32 random bytes from
`secrets`, shown once and stored only as its SHA-256 digest. Plain SHA-256 is enough
because the token has 256 bits of entropy, so a leaked digest cannot be reversed by
guessing. The local token file is created with mode 0600 and is never logged.
This module imports no FastAPI, so the token commands start fast.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import sqlite3
import stat
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from atlas_tui.errors import AtlasError
from storage.db import DB_FILENAME, connect
from storage.tokens import count_active_tokens, insert_token, list_tokens, replace_token, revoke_token

__all__ = [
    "LOCAL_SCOPES",
    "LOCAL_TOKEN_FILE",
    "LOCAL_TOKEN_NAME",
    "TOKEN_PREFIX",
    "Scope",
    "TokenError",
    "check_name",
    "count_remote_tokens",
    "create_token",
    "ensure_local_token",
    "format_scopes",
    "grants",
    "hash_token",
    "parse_scopes",
    "read_local_token",
    "revoke",
]

logger = logging.getLogger(__name__)


class Scope(StrEnum):
    """Permission a token carries."""

    READ = "read"
    """GET routes under `/api/`, `/ws` and `/metrics`."""
    ACK = "ack"
    """Routes that change alerts, such as `POST /api/alerts/ack/{id}`."""
    INGEST = "ingest"
    """Reserved for analytics ingestion, which today takes the app's ingest key instead."""
    ADMIN = "admin"
    """Administrative routes, and everything `read` and `ack` allow."""


LOCAL_TOKEN_NAME = "local"
"""Name of the token the daemon keeps in `LOCAL_TOKEN_FILE`, which `create_token` rejects."""

LOCAL_TOKEN_FILE = "api-token"
"""File in the data directory that contains the local token, mode 0600."""

LOCAL_SCOPES = frozenset({Scope.READ, Scope.ACK, Scope.ADMIN})
"""Scopes of the local token, used by the console and the CLI on the daemon's host."""

TOKEN_PREFIX = "atlas_"
"""Start of every token, so secret scanners and people can recognise one."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SCOPE_NAMES = frozenset(scope.value for scope in Scope)
_IMPLIED = {Scope.ADMIN: frozenset({Scope.READ, Scope.ACK})}


class TokenError(AtlasError):
    """Raised for an invalid token name or scope list, a name in use, or an unknown name."""


def parse_scopes(text: str) -> frozenset[Scope]:
    """Parse a comma-separated scope list such as `read,ack`.

    Raises:
        TokenError: the list is empty or names an unknown scope.
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise TokenError(f"no scope given; pass one or more of {format_scopes(Scope)}, such as --scope read")
    unknown = [name for name in names if name not in _SCOPE_NAMES]
    if unknown:
        raise TokenError(f"unknown scope {unknown[0]!r}; use one or more of {format_scopes(Scope)}")
    return frozenset(Scope(name) for name in names)


def format_scopes(scopes: Iterable[str]) -> str:
    """Return scopes as a sorted comma-separated list."""
    return ",".join(sorted(str(scope) for scope in scopes))


def grants(scopes: Iterable[str], required: Scope) -> bool:
    """Return True when a token with `scopes` may do what `required` allows (`admin` implies read and ack)."""
    granted = {Scope(scope) for scope in scopes if scope in _SCOPE_NAMES}
    return required in granted or any(required in _IMPLIED.get(scope, ()) for scope in granted)


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which `token` is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> None:
    """Check that `name` may name a new token.

    Raises:
        TokenError: the name is reserved or has characters other than letters, digits, '.', '_' and '-'.
    """
    if name == LOCAL_TOKEN_NAME:
        raise TokenError(f"the name {name!r} is reserved for the daemon's token file; choose another name")
    if not _NAME.fullmatch(name):
        raise TokenError(
            f"invalid token name {name!r}; use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def create_token(conn: sqlite3.Connection, name: str, scopes: frozenset[Scope], now: float) -> str:
    """Create an active token named `name` and return it, storing only its hash.

    Raises:
        TokenError: the name is invalid, reserved, or used by an active token.
    """
    check_name(name)
    token = _new_token()
    if not insert_token(conn, name, hash_token(token), scopes, now):
        raise TokenError(
            f"an active token named {name!r} exists; choose another name or revoke it first "
            f"with `atlas api token revoke {name}`"
        )
    logger.info("api token created name=%s scopes=%s", name, format_scopes(scopes))
    return token


def revoke(conn: sqlite3.Connection, name: str, now: float) -> None:
    """Revoke the active token named `name`.

    Raises:
        TokenError: no active token has this name.
    """
    if not revoke_token(conn, name, now):
        raise TokenError(f"no active token named {name!r}; `atlas api token list` shows the names")
    logger.info("api token revoked name=%s", name)


def ensure_local_token(conn: sqlite3.Connection, data_dir: Path, now: float) -> bool:
    """Make sure the local token file contains the active token named `local`, and return True if it was replaced.

    The file is reused while its token matches the active `local` row. A missing,
    empty or unmatched file, a revoked `local` token, or a file readable by other
    users gets a new token: the file is written first (mode 0600, atomically), then
    the row is replaced.
    """
    path = data_dir / LOCAL_TOKEN_FILE
    current = _read_private(path)
    if current is not None and _is_active_local(conn, current):
        return False
    token = _new_token()
    _write_private(path, token)
    replace_token(conn, LOCAL_TOKEN_NAME, hash_token(token), LOCAL_SCOPES, now)
    logger.info("local api token written path=%s scopes=%s", path, format_scopes(LOCAL_SCOPES))
    return True


def read_local_token(data_dir: Path) -> str:
    """Return the token from the daemon's local token file in `data_dir`.

    Raises:
        TokenError: the file is missing, unreadable or empty.
    """
    path = data_dir / LOCAL_TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise TokenError(
            f"cannot read the API token file {path}: {err.strerror or err}; "
            "start `atlas daemon` once to create it, or check --data-dir"
        ) from err
    if not token:
        raise TokenError(f"the API token file {path} is empty; restart `atlas daemon` to write a new one")
    return token


def count_remote_tokens(data_dir: Path) -> int:
    """Return how many active tokens the store in `data_dir` has besides the local one.

    **Read-only**. A missing store, or one created before tokens existed, has none.
    """
    path = data_dir / DB_FILENAME
    if not path.is_file():
        return 0
    conn = connect(path)
    try:
        return count_active_tokens(conn, except_name=LOCAL_TOKEN_NAME)
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return 0
        raise
    finally:
        conn.close()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _is_active_local(conn: sqlite3.Connection, token: str) -> bool:
    digest = hash_token(token)
    return any(
        row.name == LOCAL_TOKEN_NAME and secrets.compare_digest(row.token_hash, digest) for row in list_tokens(conn)
    )


def _read_private(path: Path) -> str | None:
    """Return the file's token, or None when it is missing, empty or readable by others."""
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        logger.warning("local api token file unreadable path=%s: %s; writing a new one", path, err)
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("local api token file was open to other users path=%s mode=%o; writing a new one", path, mode & 0o777)
        return None
    return token or None


def _write_private(path: Path, token: str) -> None:
    """Write `token` to `path` with mode 0600 through a temporary file and a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # O_EXCL makes sure the mode below applies, so a leftover file with a wider
    # mode is removed rather than reused.
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
