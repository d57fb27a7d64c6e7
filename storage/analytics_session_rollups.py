"""Session rollups by hour of session start, and the session reads that complete them.

`storage.analytics_days.derive_hour` calls `derive_session_hour` for every hour that
`atlas_tui.analytics.rollups.refresh` rewrites, after the sessions of the touched
devices were rederived. It counts the sessions that start in the hour by release
and final status into `analytics_session_hourly`, and returns their durations as
coarse bucket counts for the packed histograms (metric `session_duration`).
`storage.analytics_activity` keeps the devices that started sessions. The reports
combine these with a few raw reads: sessions in the partial hours at the window's
ends, sessions whose status still depends on the reader's clock (`pending`), and the
sessions of one duration bucket to find an exact percentile.

Invariants: a session is `pending` while it has no fatal error and no end
(`end_reason IS NULL`), because it is `open` or `abnormal` depending on `now`. Every
other status is final and rolled up. Duration buckets are fixed intervals
`[DURATION_BOUNDS[b], DURATION_BOUNDS[b + 1])`, so the raw sessions of bucket `b` are
exactly the ones its count covers.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence

from storage.analytics_packed import Series
from storage.analytics_windows import HOUR
from storage.sessions import SessionRow, status_sql

__all__ = [
    "DURATION_BOUNDS",
    "PENDING_SQL",
    "SESSION_DURATION",
    "derive_session_hour",
    "duration_bucket",
    "final_session_starts",
    "final_status",
    "pending_sessions",
    "read_session_hours",
    "sessions_in_bucket",
]

SESSION_DURATION = "session_duration"
"""Packed-histogram metric of session duration buckets (values are bucket numbers)."""

PENDING_SQL = "end_reason IS NULL AND fatal = 0"
"""SQL condition of the sessions whose status depends on the reader's clock."""

DURATION_BOUNDS: tuple[float, ...] = (
    float("-inf"), 0.0, *(0.001 * 2 ** (step / 64) for step in range(64 * 40)), float("inf")
)  # fmt: skip
"""Bucket edges in seconds: 64 buckets per doubling from 1 ms up (1.1 % wide), so one bucket has few sessions."""

SessionHourRow = tuple[int, str, str, str, int]
"""`(hour, app_version, platform, status, count)` of the sessions with a final status."""


def final_status(fatal: int, end_reason: str | None, unhandled: int) -> str | None:
    """Return a session's status when it no longer depends on the reader's clock, else None.

    The same rules as `storage.sessions.status_sql` without its timeout branch.
    """
    if fatal:
        return "crashed"
    if end_reason == "next_launch":
        return "abnormal"
    if end_reason is None:
        return None
    return "errored" if unhandled else "exited"


def duration_bucket(seconds: float) -> int:
    """Return the duration bucket of `seconds`."""
    return bisect.bisect_right(DURATION_BOUNDS, seconds) - 1


def derive_session_hour(conn: sqlite3.Connection, app_id: str, hour: int) -> list[tuple[Series, Counter[int]]]:
    """Rewrite the status counts of the app's sessions that start in the hour, and return their duration buckets.

    **Writes**, in the caller's transaction. Pending sessions are left out of both.
    """
    counts: Counter[tuple[str, str, str]] = Counter()
    buckets: dict[tuple[str, str], Counter[int]] = {}
    for version, platform, fatal, end_reason, unhandled, duration in conn.execute(
        "SELECT app_version, platform, fatal, end_reason, unhandled, duration_s FROM analytics_sessions "
        "WHERE started_at >= ? AND started_at < ? AND +app_id = ?",
        (hour, hour + HOUR, app_id),
    ):
        status = final_status(fatal, end_reason, unhandled)
        if status is None:
            continue
        counts[(version, platform, status)] += 1
        buckets.setdefault((version, platform), Counter())[duration_bucket(duration)] += 1
    conn.execute("DELETE FROM analytics_session_hourly WHERE hour = ? AND app_id = ?", (hour, app_id))
    conn.executemany(
        "INSERT INTO analytics_session_hourly (hour, app_id, app_version, platform, status, count) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(hour, app_id, *key, count) for key, count in counts.items()],
    )
    return [((version, platform, SESSION_DURATION, "", ""), found) for (version, platform), found in buckets.items()]


def read_session_hours(
    conn: sqlite3.Connection, start_hour: int, end_hour: int, filters: Sequence[tuple[str, str]] = ()
) -> list[SessionHourRow]:
    """Return the final-status session counts per hour of `[start_hour, end_hour)`. **Read-only.**"""
    extra, params = _conditions(filters)
    return conn.execute(
        "SELECT hour, app_version, platform, status, sum(count) FROM analytics_session_hourly "
        f"WHERE hour >= ? AND hour < ?{extra} GROUP BY hour, app_version, platform, status",
        (start_hour, end_hour, *params),
    ).fetchall()


def pending_sessions(
    conn: sqlite3.Connection, start: float, end: float, now: float, filters: Sequence[tuple[str, str]] = ()
) -> list[SessionRow]:
    """Return the pending sessions started in `[start, end)` with their status at `now`. **Read-only.**"""
    extra, params = _session_conditions(filters)
    return conn.execute(
        f"SELECT app_id, device_hash, app_version, platform, started_at, duration_s, {status_sql('?')} "
        f"FROM analytics_sessions WHERE {PENDING_SQL} AND started_at >= ? AND started_at < ?{extra}",
        (now, start, end, *params),
    ).fetchall()


def final_session_starts(
    conn: sqlite3.Connection, start: float, end: float, filters: Sequence[tuple[str, str]] = ()
) -> list[float]:
    """Return the start times of the sessions with a final status started in `[start, end)`. **Read-only.**"""
    extra, params = _session_conditions(filters)
    rows = conn.execute(
        f"SELECT started_at FROM analytics_sessions WHERE started_at >= ? AND started_at < ? "
        f"AND NOT ({PENDING_SQL}){extra}",
        (start, end, *params),
    )
    return [row[0] for row in rows]


def sessions_in_bucket(
    conn: sqlite3.Connection,
    bucket: int,
    ranges: Iterable[tuple[float, float]],
    now: float,
    filters: Sequence[tuple[str, str]] = (),
) -> list[float]:
    """Return the durations in one bucket of the sessions started in `ranges` that are not open at `now`. **Read-only.**"""
    spans = list(ranges)
    if not spans:
        return []
    extra, params = _session_conditions(filters)
    within = " OR ".join("(started_at >= ? AND started_at < ?)" for _ in spans)
    # The bucket is narrow and the window usually wide, so the duration index must lead.
    rows = conn.execute(
        "SELECT duration_s FROM analytics_sessions INDEXED BY analytics_sessions_by_duration "
        f"WHERE duration_s >= ? AND duration_s < ? AND ({within}){extra} AND {status_sql('?')} != 'open'",
        (DURATION_BOUNDS[bucket], DURATION_BOUNDS[bucket + 1], *(ts for span in spans for ts in span), *params, now),
    )
    return [row[0] for row in rows]


def _conditions(filters: Sequence[tuple[str, str]], prefix: str = "") -> tuple[str, list[str]]:
    return "".join(f" AND {prefix}{column} = ?" for column, _ in filters), [value for _, value in filters]


def _session_conditions(filters: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
    # The unary plus keeps SQLite from reading every session of the app through the
    # primary key (app_id first) instead of the time or duration index it should use.
    return _conditions(filters, "+")
