"""API tokens for tests: create one in a data directory's store, or read a daemon's local token.

Every API route but `/healthz`, `/readyz`, `/openapi.json` and the analytics ingest
route needs `Authorization: Bearer <token>`. Tests that build an app with `create_api`
call `issue_token` on its data directory (or use the `api_token` fixture of
`tests/conftest.py`). Tests that start `atlas daemon` read the token file the daemon
writes with `daemon_headers`.
"""

from __future__ import annotations

import time
from pathlib import Path

from atlas_tui.api_tokens import create_token, parse_scopes, read_local_token
from storage.db import open_store

__all__ = ["ALL_SCOPES", "TEST_TOKEN_NAME", "bearer", "daemon_headers", "issue_token"]

TEST_TOKEN_NAME = "test"
"""Default name of the token `issue_token` creates."""

ALL_SCOPES = "read,ack,admin"
"""Scopes of the default test token: every route the API guards."""


def issue_token(data_dir: Path, scopes: str = ALL_SCOPES, name: str = TEST_TOKEN_NAME) -> str:
    """Create a token with `scopes` in the store of `data_dir` (created if missing) and return it."""
    conn = open_store(data_dir)
    try:
        return create_token(conn, name, parse_scopes(scopes), time.time())
    finally:
        conn.close()


def bearer(token: str) -> dict[str, str]:
    """Return the `Authorization` header for `token`."""
    return {"Authorization": f"Bearer {token}"}


def daemon_headers(data_dir: Path) -> dict[str, str]:
    """Return the `Authorization` header with the local token of the daemon on `data_dir`."""
    return bearer(read_local_token(data_dir))
