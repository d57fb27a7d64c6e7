"""`storage.tokens`: hashes only, one active row per name, revoked rows kept."""

from __future__ import annotations

import sqlite3

from storage.tokens import count_active_tokens, insert_token, list_tokens, replace_token, revoke_token
from tests.storage.conftest import T0


def test_insert_and_list(store: sqlite3.Connection) -> None:
    """An inserted token is listed with sorted scopes and no revocation time."""
    assert insert_token(store, "ci", "a" * 64, ["read", "ack"], T0)

    [row] = list_tokens(store)

    assert (row.name, row.token_hash, row.scopes, row.created_at, row.revoked_at) == ("ci", "a" * 64, ("ack", "read"), T0, None)


def test_active_name_unique(store: sqlite3.Connection) -> None:
    """A second active token with the same name is refused and the first stays."""
    insert_token(store, "ci", "a" * 64, ["read"], T0)

    added = insert_token(store, "ci", "b" * 64, ["read"], T0 + 1)

    assert added is False
    assert [row.token_hash for row in list_tokens(store)] == ["a" * 64]


def test_revoke_keeps_row(store: sqlite3.Connection) -> None:
    """A revoked token leaves the active list but stays in the full list with its time."""
    insert_token(store, "ci", "a" * 64, ["read"], T0)

    revoked = revoke_token(store, "ci", T0 + 5)

    assert revoked is True
    assert list_tokens(store) == []
    assert [row.revoked_at for row in list_tokens(store, include_revoked=True)] == [T0 + 5]


def test_revoke_unknown_false(store: sqlite3.Connection) -> None:
    """Revoking a name with no active token changes nothing and reports it."""
    assert revoke_token(store, "nobody", T0) is False


def test_name_reusable_after_revoke(store: sqlite3.Connection) -> None:
    """Once revoked, a name may be given to a new token."""
    insert_token(store, "ci", "a" * 64, ["read"], T0)
    revoke_token(store, "ci", T0 + 1)

    assert insert_token(store, "ci", "b" * 64, ["read"], T0 + 2)
    assert [row.token_hash for row in list_tokens(store)] == ["b" * 64]


def test_replace_swaps_active(store: sqlite3.Connection) -> None:
    """`replace_token` revokes the old active row and adds the new one in one step."""
    insert_token(store, "local", "a" * 64, ["read"], T0)

    replace_token(store, "local", "b" * 64, ["read", "admin"], T0 + 1)

    rows = list_tokens(store, include_revoked=True)
    assert [(row.token_hash, row.revoked_at) for row in rows] == [("a" * 64, T0 + 1), ("b" * 64, None)]


def test_count_skips_name(store: sqlite3.Connection) -> None:
    """The count leaves out revoked tokens and the excluded name."""
    insert_token(store, "local", "a" * 64, ["read"], T0)
    insert_token(store, "ci", "b" * 64, ["read"], T0)
    insert_token(store, "old", "c" * 64, ["read"], T0)
    revoke_token(store, "old", T0)

    assert count_active_tokens(store) == 2
    assert count_active_tokens(store, except_name="local") == 1
