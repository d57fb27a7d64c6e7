"""Analytics sessions: per-device event reads, session rewrites and session queries.

`atlas_tui.analytics.rollups.refresh` reads a device's events with `device_events`
and writes the sessions `atlas_tui.analytics.sessions.derive_sessions` made from
them with `replace_sessions`. Reports read with `session_rows`, whose status column
is the SQL form of `atlas_tui.analytics.sessions.session_status`.

Invariants: a device's sessions from `since` on are replaced in the caller's
transaction, so a reader sees the old set or the new one. Device pseudonyms of
`minimal` events are NULL in `analytics_events` and '' here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

__all__ = ["EventTuple", "SessionRow", "SessionTuple", "device_events", "replace_sessions", "session_rows", "status_sql"]

SESSION_TIMEOUT = 1800.0
"""Seconds without traffic after which an open session is `abnormal`; equal to `atlas_tui.analytics.sessions.SESSION_TIMEOUT`."""

EventTuple = tuple[str, str, float, str, str, str]
"""`(session_id, type, event_ts, app_version, platform, attrs)` of one event."""

SessionTuple = tuple[str, str, str, float, float, float, str | None, int, int]
"""`(session_id, app_version, platform, started_at, last_event_at, duration_s, end_reason, fatal, unhandled)`."""

SessionRow = tuple[str, str, str, str, float, float, str]
"""`(app_id, device_hash, app_version, platform, started_at, duration_s, status)`."""


def status_sql(now_param: str = ":now") -> str:
    """Return the SQL expression of a session's status at the time bound to `now_param`."""
    return (
        "CASE WHEN fatal THEN 'crashed' "
        "WHEN end_reason = 'next_launch' THEN 'abnormal' "
        f"WHEN end_reason IS NULL AND {now_param} - last_event_at >= {SESSION_TIMEOUT!r} THEN 'abnormal' "
        "WHEN end_reason IS NULL THEN 'open' "
        "WHEN unhandled THEN 'errored' ELSE 'exited' END"
    )


def device_events(conn: sqlite3.Connection, app_id: str, device_hash: str, since: float) -> list[EventTuple]:
    """Return the known-schema events of one device from `since` on. **Read-only.**"""
    if device_hash:
        where, params = "device_hash = ?", (app_id, device_hash, since)
    else:
        where, params = "device_hash IS NULL", (app_id, since)  # type: ignore[assignment]
    rows = conn.execute(
        "SELECT session_id, type, event_ts, coalesce(app_version, ''), coalesce(platform, ''), attrs "
        f"FROM analytics_events WHERE app_id = ? AND {where} AND event_ts >= ? "
        "AND schema_known = 1 AND session_id IS NOT NULL",
        params,
    ).fetchall()
    return rows


def replace_sessions(
    conn: sqlite3.Connection, app_id: str, device_hash: str, since: float, sessions: Sequence[SessionTuple]
) -> None:
    """Replace the device's sessions that start at or after `since`. **Writes**, in the caller's transaction."""
    conn.execute(
        "DELETE FROM analytics_sessions WHERE app_id = ? AND device_hash = ? AND started_at >= ?",
        (app_id, device_hash, since),
    )
    conn.executemany(
        "INSERT OR REPLACE INTO analytics_sessions (app_id, device_hash, session_id, app_version, platform, "
        "started_at, last_event_at, duration_s, end_reason, fatal, unhandled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(app_id, device_hash, *session) for session in sessions if session[3] >= since],
    )


def session_rows(
    conn: sqlite3.Connection,
    start: float,
    end: float,
    now: float,
    *,
    app: str | None = None,
    version: str | None = None,
    platform: str | None = None,
) -> list[SessionRow]:
    """Return the sessions started in `[start, end)` with their status at `now`. **Read-only.**"""
    where, params = _filters(app, version, platform)
    return conn.execute(
        f"SELECT app_id, device_hash, app_version, platform, started_at, duration_s, {status_sql()} "
        f"FROM analytics_sessions WHERE started_at >= :start AND started_at < :end{where}",
        {"start": start, "end": end, "now": now, **params},
    ).fetchall()


def _filters(app: str | None, version: str | None, platform: str | None) -> tuple[str, dict[str, str]]:
    clauses: list[str] = []
    params: dict[str, str] = {}
    for column, value in (("app_id", app), ("app_version", version), ("platform", platform)):
        if value is not None:
            # The unary plus keeps SQLite on the start-time index: with `app_id = ?` it
            # would read every session of the app through the primary key.
            clauses.append(f" AND +{column} = :{column}")
            params[column] = value
    return "".join(clauses), params
