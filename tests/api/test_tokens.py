"""`atlas_tui.api_tokens`: scope parsing, token format, and the daemon's local token file."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.api_tokens import (
    LOCAL_TOKEN_FILE,
    TOKEN_PREFIX,
    Scope,
    TokenError,
    create_token,
    ensure_local_token,
    grants,
    hash_token,
    parse_scopes,
    read_local_token,
    revoke,
)
from storage.db import open_store
from storage.tokens import list_tokens

NOW = 1_750_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A migrated store in `tmp_path`."""
    conn = open_store(tmp_path)
    yield conn
    conn.close()


def test_parse_scopes() -> None:
    """A comma-separated list with spaces parses to the scopes."""
    assert parse_scopes("read, ack") == {Scope.READ, Scope.ACK}


@pytest.mark.parametrize(("text", "message"), [("", "no scope given"), ("read,write", "unknown scope 'write'")])
def test_parse_scopes_invalid(text: str, message: str) -> None:
    """An empty list or an unknown scope is rejected with the accepted names."""
    with pytest.raises(TokenError) as caught:
        parse_scopes(text)

    assert message in str(caught.value)
    assert "ack,admin,ingest,read" in str(caught.value)


@pytest.mark.parametrize(
    ("held", "required", "expected"),
    [
        ({"read"}, Scope.READ, True),
        ({"read"}, Scope.ACK, False),
        ({"admin"}, Scope.ACK, True),
        ({"admin"}, Scope.READ, True),
        ({"admin"}, Scope.INGEST, False),
        ({"ingest"}, Scope.READ, False),
        ({"unknown"}, Scope.READ, False),
    ],
)
def test_grants(held: set[str], required: Scope, expected: bool) -> None:
    """Each scope grants itself, and admin also grants read and ack."""
    assert grants(held, required) is expected


def test_created_token_stored_hashed(store: sqlite3.Connection) -> None:
    """The token has the prefix and 43 URL-safe characters; only its SHA-256 digest is stored."""
    token = create_token(store, "ci", parse_scopes("read"), NOW)

    [row] = list_tokens(store)
    assert token.startswith(TOKEN_PREFIX)
    assert len(token) == len(TOKEN_PREFIX) + 43
    assert row.token_hash == hash_token(token)
    assert token not in repr(store.execute("SELECT * FROM api_tokens").fetchall())


@pytest.mark.parametrize(("name", "message"), [("local", "reserved"), ("has space", "invalid token name"), ("", "invalid")])
def test_bad_names_rejected(store: sqlite3.Connection, name: str, message: str) -> None:
    """The reserved name and names with other characters are rejected."""
    with pytest.raises(TokenError) as caught:
        create_token(store, name, parse_scopes("read"), NOW)

    assert message in str(caught.value)


def test_duplicate_name_rejected(store: sqlite3.Connection) -> None:
    """A second active token with the same name is rejected, naming the revoke command."""
    create_token(store, "ci", parse_scopes("read"), NOW)

    with pytest.raises(TokenError) as caught:
        create_token(store, "ci", parse_scopes("read"), NOW)

    assert "atlas api token revoke ci" in str(caught.value)


def test_revoke_unknown(store: sqlite3.Connection) -> None:
    """Revoking an unknown name says how to list the names."""
    with pytest.raises(TokenError) as caught:
        revoke(store, "nobody", NOW)

    assert "atlas api token list" in str(caught.value)


def test_local_token_file_private(store: sqlite3.Connection, tmp_path: Path) -> None:
    """The local token file is created with mode 0600 and matches the active `local` row."""
    created = ensure_local_token(store, tmp_path, NOW)

    path = tmp_path / LOCAL_TOKEN_FILE
    [row] = list_tokens(store)
    assert created is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert row.name == "local"
    assert set(row.scopes) == {"read", "ack", "admin"}
    assert row.token_hash == hash_token(read_local_token(tmp_path))


def test_local_token_reused(store: sqlite3.Connection, tmp_path: Path) -> None:
    """A second start keeps the same token and adds no row."""
    ensure_local_token(store, tmp_path, NOW)
    before = read_local_token(tmp_path)

    created = ensure_local_token(store, tmp_path, NOW + 60)

    assert created is False
    assert read_local_token(tmp_path) == before
    assert len(list_tokens(store, include_revoked=True)) == 1


def test_local_token_rotated_after_revoke(store: sqlite3.Connection, tmp_path: Path) -> None:
    """Revoking `local` makes the next start write a new token."""
    ensure_local_token(store, tmp_path, NOW)
    before = read_local_token(tmp_path)
    revoke(store, "local", NOW + 1)

    created = ensure_local_token(store, tmp_path, NOW + 2)

    assert created is True
    assert read_local_token(tmp_path) != before
    assert [row.token_hash for row in list_tokens(store)] == [hash_token(read_local_token(tmp_path))]


def test_local_token_rotated_when_readable(store: sqlite3.Connection, tmp_path: Path) -> None:
    """A token file that other users could read is replaced by a new private one."""
    ensure_local_token(store, tmp_path, NOW)
    path = tmp_path / LOCAL_TOKEN_FILE
    before = read_local_token(tmp_path)
    os.chmod(path, 0o644)

    created = ensure_local_token(store, tmp_path, NOW + 1)

    assert created is True
    assert read_local_token(tmp_path) != before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_read_missing_token_file(tmp_path: Path) -> None:
    """Reading a missing token file raises an error that names `atlas daemon` as the fix."""
    with pytest.raises(TokenError) as caught:
        read_local_token(tmp_path)

    assert "start `atlas daemon`" in str(caught.value)
