"""The `api_tokens` table: bearer tokens of the HTTP API, stored as hashes only.

`atlas_tui.api_tokens` creates, revokes and rotates tokens through these functions,
and the API's auth middleware reads the active ones. Invariants: the token itself is
never passed in, only its SHA-256 hex digest. At most one active (not revoked) row
has a given name, which a partial unique index enforces. Revoked rows are kept, so
`atlas api token list --all` still shows when a token was revoked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from storage.db import transaction

__all__ = ["TokenRow", "count_active_tokens", "insert_token", "list_tokens", "replace_token", "revoke_token"]


@dataclass(frozen=True)
class TokenRow:
    """One stored token."""

    name: str
    """Name given at creation, unique among active tokens."""
    token_hash: str
    """SHA-256 hex digest of the token."""
    scopes: tuple[str, ...]
    """Granted scopes, sorted."""
    created_at: float
    """UTC epoch seconds of the creation."""
    revoked_at: float | None
    """UTC epoch seconds of the revocation; None while the token is active."""


_COLUMNS = "name, token_hash, scopes, created_at, revoked_at"


def insert_token(conn: sqlite3.Connection, name: str, token_hash: str, scopes: Iterable[str], now: float) -> bool:
    """Store a new active token and return False when an active token already has `name`.

    **Writes**, in one transaction.
    """
    try:
        with transaction(conn):
            _insert(conn, name, token_hash, scopes, now)
    except sqlite3.IntegrityError:
        return False
    return True


def replace_token(conn: sqlite3.Connection, name: str, token_hash: str, scopes: Iterable[str], now: float) -> None:
    """Revoke the active token named `name`, if any, and store the new one in its place.

    **Writes**, in one transaction, so readers see either the old or the new token.
    """
    with transaction(conn):
        conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now, name))
        _insert(conn, name, token_hash, scopes, now)


def revoke_token(conn: sqlite3.Connection, name: str, now: float) -> bool:
    """Mark the active token named `name` revoked and return False when there is none.

    **Writes**, in one transaction.
    """
    with transaction(conn):
        cursor = conn.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now, name)
        )
    return cursor.rowcount > 0


def list_tokens(conn: sqlite3.Connection, *, include_revoked: bool = False) -> list[TokenRow]:
    """Return the active tokens by name, or every row (oldest first per name) with `include_revoked`.

    **Read-only**, one statement.
    """
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_tokens {where} ORDER BY name, created_at").fetchall()
    return [_row(row) for row in rows]


def count_active_tokens(conn: sqlite3.Connection, *, except_name: str | None = None) -> int:
    """Return how many tokens are active, not counting one named `except_name`.

    **Read-only**, one statement.
    """
    row = conn.execute(
        "SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL AND name IS NOT ?", (except_name,)
    ).fetchone()
    return int(row[0])


def _insert(conn: sqlite3.Connection, name: str, token_hash: str, scopes: Iterable[str], now: float) -> None:
    conn.execute(
        "INSERT INTO api_tokens (name, token_hash, scopes, created_at) VALUES (?, ?, ?, ?)",
        (name, token_hash, ",".join(sorted(set(scopes))), now),
    )


def _row(row: tuple[str, str, str, float, float | None]) -> TokenRow:
    name, token_hash, scopes, created_at, revoked_at = row
    return TokenRow(
        name=name,
        token_hash=token_hash,
        scopes=tuple(scope for scope in scopes.split(",") if scope),
        created_at=created_at,
        revoked_at=revoked_at,
    )
