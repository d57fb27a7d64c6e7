"""Hourly analytics rollups: the work queue of new events, hour rewrites and report reads.

`atlas_tui.analytics.rollups.refresh` drives this module. `claim_new_events` reads
events stored after the watermark (an `analytics_events.id`, which grows in commit
order because writers take the write lock) and queues their devices and UTC hours.
`replace_hour` then rewrites every rollup row of one app and hour from the events.
`atlas_tui.analytics.reports` reads the rollups with the `read_*` functions.

Invariants: `claim_new_events` and `replace_hour` each write one batch or one hour
in one BEGIN IMMEDIATE transaction, so ingestion waits for at most one of them. Rewriting an hour is idempotent, so a
late event (up to the ingest window, 7 days by default) only marks its hour dirty
and the next refresh recomputes that hour. Version and platform are '' when an
event has none. Histograms hold whole milliseconds (time on screen: whole seconds),
so percentiles read from them are exact to that unit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from storage.db import transaction

__all__ = [
    "HOUR",
    "HistRow",
    "HourEvent",
    "HourlyRow",
    "ReportFilter",
    "claim_new_events",
    "dirty_devices",
    "dirty_hours",
    "finish_device",
    "hour_events",
    "mark_hours_dirty",
    "read_distinct_devices",
    "read_hist",
    "read_hourly",
    "read_last_events",
    "read_screen_devices",
    "replace_hour",
    "reset_watermark",
    "session_screen_events",
]

HOUR = 3600
"""Seconds per rollup bucket."""

_WATERMARK = "events_id"

HourlyRow = tuple[str, str, str, str, str, int, float]
"""`(app_version, platform, metric, key1, key2, count, total)` of one hour."""

HistRow = tuple[str, str, str, str, str, int, int]
"""`(app_version, platform, metric, key1, key2, value, count)` of one hour; value in whole ms or s."""

HourEvent = tuple[str | None, str, str, str, str, str, str, float]
"""`(device_hash, session_id, type, app_version, platform, attrs, properties, event_ts)`."""


@dataclass(frozen=True)
class ReportFilter:
    """The window `[start_hour, end_hour)` in UTC hour starts and optional dimension filters."""

    start_hour: int
    end_hour: int
    app: str | None = None
    version: str | None = None
    platform: str | None = None

    def where(self) -> tuple[str, list[object]]:
        """Return the SQL condition and its parameters for the rollup tables."""
        clauses = ["hour >= ?", "hour < ?"]
        params: list[object] = [self.start_hour, self.end_hour]
        for column, value in (("app_id", self.app), ("app_version", self.version), ("platform", self.platform)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return " AND ".join(clauses), params


def claim_new_events(conn: sqlite3.Connection, limit: int) -> int:
    """Queue the devices and hours of up to `limit` events past the watermark. **Writes**, one transaction.

    Returns:
        The number of events claimed; 0 when the rollups are up to date.
    """
    with transaction(conn):
        row = conn.execute("SELECT value FROM analytics_rollup_state WHERE name = ?", (_WATERMARK,)).fetchone()
        mark = row[0] if row else 0
        rows = conn.execute(
            "SELECT id, app_id, coalesce(device_hash, ''), event_ts, received_at, coalesce(app_version, ''), "
            "coalesce(platform, '') FROM analytics_events WHERE id > ? ORDER BY id LIMIT ?",
            (mark, limit),
        ).fetchall()
        if not rows:
            return 0
        devices: dict[tuple[str, str], float] = {}
        hours: set[tuple[str, int]] = set()
        last: dict[tuple[str, str, str], float] = {}
        for _id, app_id, device, event_ts, received_at, version, platform in rows:
            key = (app_id, device)
            devices[key] = min(devices.get(key, event_ts), event_ts)
            hours.add((app_id, int(event_ts // HOUR) * HOUR))
            last[(app_id, version, platform)] = max(last.get((app_id, version, platform), 0.0), received_at)
        conn.executemany(
            "INSERT INTO analytics_dirty_devices (app_id, device_hash, since) VALUES (?, ?, ?) "
            "ON CONFLICT (app_id, device_hash) DO UPDATE SET since = min(since, excluded.since)",
            [(app, device, since) for (app, device), since in devices.items()],
        )
        mark_hours_dirty(conn, hours)
        conn.executemany(
            "INSERT INTO analytics_last_event (app_id, app_version, platform, received_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET received_at = max(received_at, excluded.received_at)",
            [(*key, received) for key, received in last.items()],
        )
        conn.execute(
            "INSERT INTO analytics_rollup_state (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (_WATERMARK, rows[-1][0]),
        )
    return len(rows)


def reset_watermark(conn: sqlite3.Connection) -> None:
    """Move the watermark before the first event, so the next claims take every stored event again. **Writes.**"""
    with transaction(conn):
        conn.execute("DELETE FROM analytics_rollup_state WHERE name = ?", (_WATERMARK,))


def mark_hours_dirty(conn: sqlite3.Connection, hours: Iterable[tuple[str, int]]) -> None:
    """Queue `(app_id, hour)` pairs for a rewrite. **Writes**, in the caller's transaction."""
    conn.executemany("INSERT OR IGNORE INTO analytics_dirty_hours (app_id, hour) VALUES (?, ?)", list(hours))


def dirty_devices(conn: sqlite3.Connection, limit: int) -> list[tuple[str, str, float]]:
    """Return up to `limit` queued `(app_id, device_hash, since)` entries. **Read-only.**"""
    return conn.execute("SELECT app_id, device_hash, since FROM analytics_dirty_devices LIMIT ?", (limit,)).fetchall()


def finish_device(conn: sqlite3.Connection, app_id: str, device_hash: str, since: float) -> None:
    """Remove a device from the queue unless a newer claim moved its `since` earlier. **Writes**, caller's transaction."""
    conn.execute(
        "DELETE FROM analytics_dirty_devices WHERE app_id = ? AND device_hash = ? AND since >= ?",
        (app_id, device_hash, since),
    )


def dirty_hours(conn: sqlite3.Connection, limit: int) -> list[tuple[str, int]]:
    """Return up to `limit` queued `(app_id, hour)` pairs, oldest first. **Read-only.**"""
    return conn.execute("SELECT app_id, hour FROM analytics_dirty_hours ORDER BY hour LIMIT ?", (limit,)).fetchall()


def hour_events(conn: sqlite3.Connection, app_id: str, hour: int) -> list[HourEvent]:
    """Return the known-schema events of one app whose corrected time is in the hour. **Read-only.**"""
    return conn.execute(
        "SELECT device_hash, coalesce(session_id, ''), type, coalesce(app_version, ''), coalesce(platform, ''), "
        "attrs, properties, event_ts FROM analytics_events "
        "WHERE app_id = ? AND event_ts >= ? AND event_ts < ? AND schema_known = 1",
        (app_id, hour, hour + HOUR),
    ).fetchall()


def session_screen_events(
    conn: sqlite3.Connection, app_id: str, session_ids: Sequence[str]
) -> list[tuple[str, str, float]]:
    """Return `(session_id, type, event_ts)` of the screen views and session ends of the sessions. **Read-only.**"""
    found: list[tuple[str, str, float]] = []
    for offset in range(0, len(session_ids), 500):
        chunk = list(session_ids[offset : offset + 500])
        marks = ",".join("?" * len(chunk))
        found.extend(
            conn.execute(
                "SELECT session_id, type, event_ts FROM analytics_events WHERE app_id = ? "
                f"AND session_id IN ({marks}) AND type IN ('screen_view', 'session_end')",
                (app_id, *chunk),
            ).fetchall()
        )
    return found


def replace_hour(
    conn: sqlite3.Connection,
    app_id: str,
    hour: int,
    hourly: Sequence[HourlyRow],
    hist: Sequence[HistRow],
    devices: Iterable[tuple[str, str, str, str]],
) -> None:
    """Rewrite every rollup row of one app and hour and unqueue the hour. **Writes**, one transaction.

    Args:
        devices: `(app_version, platform, screen, device_hash)`, screen '' for any activity.
    """
    with transaction(conn):
        for table in ("analytics_hourly", "analytics_hourly_hist", "analytics_hourly_devices"):
            conn.execute(f"DELETE FROM {table} WHERE hour = ? AND app_id = ?", (hour, app_id))
        conn.executemany(
            "INSERT INTO analytics_hourly (hour, app_id, app_version, platform, metric, key1, key2, count, total) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(hour, app_id, *row) for row in hourly],
        )
        conn.executemany(
            "INSERT INTO analytics_hourly_hist (hour, app_id, app_version, platform, metric, key1, key2, value, count) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(hour, app_id, *row) for row in hist],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO analytics_hourly_devices (hour, app_id, app_version, platform, screen, device_hash) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(hour, app_id, *row) for row in devices],
        )
        conn.execute("DELETE FROM analytics_dirty_hours WHERE app_id = ? AND hour = ?", (app_id, hour))


def read_hourly(conn: sqlite3.Connection, where: ReportFilter, metric: str) -> list[tuple[str, str, str, str, int, float]]:
    """Return `(app_version, platform, key1, key2, count, total)` summed over the window. **Read-only.**"""
    clause, params = where.where()
    return conn.execute(
        "SELECT app_version, platform, key1, key2, sum(count), sum(total) FROM analytics_hourly "
        f"WHERE metric = ? AND {clause} GROUP BY app_version, platform, key1, key2",
        (metric, *params),
    ).fetchall()


def read_hist(
    conn: sqlite3.Connection, where: ReportFilter, metric: str, *, by_release: bool = True
) -> list[tuple[str, str, str, str, int, int]]:
    """Return `(app_version, platform, key1, key2, value, count)` merged over the window. **Read-only.**

    With `by_release` false, releases are merged too and version and platform are ''.
    """
    clause, params = where.where()
    release = "app_version, platform" if by_release else "'', ''"
    groups = "app_version, platform, key1, key2, value" if by_release else "key1, key2, value"
    return conn.execute(
        f"SELECT {release}, key1, key2, value, sum(count) FROM analytics_hourly_hist "
        f"WHERE metric = ? AND {clause} GROUP BY {groups}",
        (metric, *params),
    ).fetchall()


def read_distinct_devices(conn: sqlite3.Connection, where: ReportFilter) -> int:
    """Return the number of distinct devices active in the window. **Read-only.**"""
    clause, params = where.where()
    row = conn.execute(
        f"SELECT count(DISTINCT device_hash) FROM analytics_hourly_devices WHERE {clause} AND screen = ''", params
    ).fetchone()
    return int(row[0])


def read_screen_devices(conn: sqlite3.Connection, where: ReportFilter) -> dict[str, int]:
    """Return distinct devices per screen in the window. **Read-only.**"""
    clause, params = where.where()
    rows = conn.execute(
        "SELECT screen, count(DISTINCT device_hash) FROM analytics_hourly_devices "
        f"WHERE {clause} AND screen != '' GROUP BY screen",
        params,
    ).fetchall()
    return {screen: int(count) for screen, count in rows}


def read_last_events(conn: sqlite3.Connection, app: str | None = None) -> list[tuple[str, str, str, float]]:
    """Return `(app_id, app_version, platform, received_at)` per release, newest first. **Read-only.**"""
    sql = "SELECT app_id, app_version, platform, received_at FROM analytics_last_event"
    params: tuple[str, ...] = ()
    if app is not None:
        sql, params = sql + " WHERE app_id = ?", (app,)
    return conn.execute(sql + " ORDER BY received_at DESC", params).fetchall()
