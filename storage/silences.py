"""Silences in the store: operator rules that keep matching alerts from notifying.

`atlas_tui.alerts.actions` creates and expires silences; the alert service reads
the active ones every cycle; the CLI, API and console list them. `storage.alerts`
re-exports everything here. Invariants: `matchers` is stored in the canonical text
form that `atlas_tui.alerts.silences.format_matchers` writes, a silence is active
while `starts_at <= now < ends_at` and it was not expired by hand, and times are
UTC epoch seconds.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from storage.db import transaction

__all__ = [
    "SilenceRecord",
    "SilenceStatus",
    "get_silence",
    "insert_silence",
    "list_silences",
    "mark_silence_expired",
    "parse_silence_id",
]

SilenceStatus = Literal["pending", "active", "expired"]
"""A silence before `starts_at`, in force, or past `ends_at` or expired by hand."""

_SILENCE_ID = re.compile(r"(?:silence_)?(\d+)")
_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at, expired_by"


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    """One silence."""

    silence_id: str
    """Public id, `silence_<n>`."""
    matchers: str
    """Label matchers in canonical form, for example `{host="atlas-01", rule="high_cpu"}`."""
    starts_at: float
    ends_at: float
    created_by: str
    """The SSH user (`$SUDO_USER`, else `$USER`) or the API token name."""
    comment: str
    created_at: float
    expired_at: float | None
    """When it was expired by hand; None if it never was."""
    expired_by: str | None

    def status(self, now: float) -> SilenceStatus:
        """Return whether the silence is pending, active or expired at `now`."""
        if self.expired_at is not None or now >= self.ends_at:
            return "expired"
        return "pending" if now < self.starts_at else "active"


def insert_silence(
    conn: sqlite3.Connection,
    matchers: str,
    *,
    starts_at: float,
    ends_at: float,
    created_by: str,
    comment: str,
    created_at: float,
) -> SilenceRecord:
    """Store a new silence and return it. **Writes** in the caller's transaction or its own."""
    with transaction(conn):
        row = conn.execute(
            "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment, created_at) "
            f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
            (matchers, starts_at, ends_at, created_by, comment, created_at),
        ).fetchone()
    return _record(row)


def mark_silence_expired(
    conn: sqlite3.Connection, silence_id: str, *, now: float, by: str
) -> SilenceRecord | None:
    """Expire a silence at `now` and return it; None when no such silence exists.

    **Writes** in the caller's transaction or its own. A silence that has already
    expired keeps its original expiry and is returned unchanged.
    """
    number = parse_silence_id(silence_id)
    if number is None:
        return None
    with transaction(conn):
        conn.execute(
            "UPDATE silences SET expired_at = ?, expired_by = ? "
            "WHERE id = ? AND expired_at IS NULL AND ends_at > ?",
            (now, by, number, now),
        )
        return get_silence(conn, silence_id)


def get_silence(conn: sqlite3.Connection, silence_id: str) -> SilenceRecord | None:
    """Return the silence `silence_<n>` (or `<n>`), or None. **Read-only**."""
    number = parse_silence_id(silence_id)
    if number is None:
        return None
    row = conn.execute(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (number,)).fetchone()
    return _record(row) if row is not None else None


def list_silences(
    conn: sqlite3.Connection, now: float, include_expired: bool = False
) -> list[SilenceRecord]:
    """Return silences that are active or pending at `now`, soonest end first.

    **Read-only**, one autocommit statement. With `include_expired`, expired
    silences follow, most recent end first.
    """
    rows = conn.execute(f"SELECT {_COLUMNS} FROM silences").fetchall()
    records = [_record(row) for row in rows]
    current = sorted((r for r in records if r.status(now) != "expired"), key=lambda r: (r.ends_at, r.silence_id))
    if not include_expired:
        return current
    expired = [r for r in records if r.status(now) == "expired"]
    expired.sort(key=lambda r: -(r.expired_at if r.expired_at is not None else r.ends_at))
    return current + expired


def parse_silence_id(silence_id: str) -> int | None:
    """Return n of `silence_<n>` or of a bare number, or None for any other text."""
    match = _SILENCE_ID.fullmatch(silence_id.strip())
    return int(match.group(1)) if match else None


def _record(row: Sequence[object]) -> SilenceRecord:
    number, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at, expired_by = row
    return SilenceRecord(
        silence_id=f"silence_{number}",
        matchers=str(matchers),
        starts_at=float(starts_at),  # type: ignore[arg-type]
        ends_at=float(ends_at),  # type: ignore[arg-type]
        created_by=str(created_by),
        comment=str(comment),
        created_at=float(created_at),  # type: ignore[arg-type]
        expired_at=expired_at,  # type: ignore[arg-type]
        expired_by=expired_by,  # type: ignore[arg-type]
    )
