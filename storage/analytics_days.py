"""Day rollups of the analytics hour rollups, so a 30-day report reads about 30 rows per series.

`atlas_tui.analytics.rollups.refresh` drives this module in two steps. In the
transaction that rewrites an app's hour (`storage.analytics_rollups.replace_hour`),
`derive_hour` packs the hour's histograms (`storage.analytics_packed`), counts the
sessions that start in it (`storage.analytics_session_rollups`) and queues the hour's
UTC day. Afterwards `rebuild_day` recomputes each queued day from its hour rows, one
day per transaction:

- `analytics_daily`: `analytics_hourly` summed per day. Totals are floating-point
  sums, so a window's total can differ in its last digits from summing its hours.
- day rows of `analytics_hist_packed`: the 24 hour histograms merged.
- device and session activity: day rows with a mask of the active hours and the
  bits of 32-day block rows (`storage.analytics_activity.rebuild_activity_day`).

Invariants: a day's rows are a pure function of its hour rows and sessions, so
rebuilding a day is idempotent and a day queued twice costs only time. An hour's
rewrite and the queueing of its day share one transaction, so a crash between the
two steps leaves the day queued, never forgotten. Readers may see a day's rows
lag its hours until `rebuild_day` has run, as hour rows lag events until the next
refresh.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from storage.analytics_activity import rebuild_activity_day
from storage.analytics_packed import Series, merge_packed, replace_packed
from storage.analytics_session_rollups import derive_session_hour
from storage.analytics_windows import DAY, HOUR, WindowParts, day_of

__all__ = [
    "backfill_day_rollups",
    "derive_hour",
    "dirty_days",
    "read_counts",
    "rebuild_day",
]

logger = logging.getLogger(__name__)

CountRow = tuple[str, str, str, str, int, float]
"""`(app_version, platform, key1, key2, count, total)` summed over a window."""


def derive_hour(conn: sqlite3.Connection, app_id: str, hour: int) -> None:
    """Rewrite the packed histograms and session counts of one app and hour, and queue its day.

    **Writes**, in the caller's transaction, after `analytics_hourly_hist` and the
    sessions hold the hour's current state.
    """
    series: dict[Series, dict[int, int]] = {}
    for version, platform, metric, key1, key2, value, count in conn.execute(
        "SELECT app_version, platform, metric, key1, key2, value, count FROM analytics_hourly_hist "
        "WHERE app_id = ? AND hour = ?",
        (app_id, hour),
    ):
        series.setdefault((version, platform, metric, key1, key2), {})[value] = count
    for key, buckets in derive_session_hour(conn, app_id, hour):
        series[key] = dict(buckets)
    replace_packed(conn, HOUR, hour, app_id, series.items())
    conn.execute("INSERT OR IGNORE INTO analytics_dirty_days (app_id, day) VALUES (?, ?)", (app_id, day_of(hour)))


def dirty_days(conn: sqlite3.Connection, limit: int) -> list[tuple[str, int]]:
    """Return up to `limit` queued `(app_id, day)` pairs, oldest first. **Read-only.**"""
    return conn.execute("SELECT app_id, day FROM analytics_dirty_days ORDER BY day LIMIT ?", (limit,)).fetchall()


def rebuild_day(conn: sqlite3.Connection, app_id: str, day: int) -> None:
    """Recompute every day rollup of one app and UTC day from its hour rollups and sessions, and unqueue the day.

    **Writes**, in the caller's transaction.
    """
    end = day + DAY
    conn.execute("DELETE FROM analytics_daily WHERE app_id = ? AND day = ?", (app_id, day))
    conn.execute(
        "INSERT INTO analytics_daily (day, app_id, app_version, platform, metric, key1, key2, count, total) "
        "SELECT ?, app_id, app_version, platform, metric, key1, key2, sum(count), sum(total) FROM analytics_hourly "
        "WHERE app_id = ? AND hour >= ? AND hour < ? GROUP BY metric, app_version, platform, key1, key2",
        (day, app_id, day, end),
    )
    _rebuild_day_hist(conn, app_id, day)
    rebuild_activity_day(conn, app_id, day)
    conn.execute("DELETE FROM analytics_dirty_days WHERE app_id = ? AND day = ?", (app_id, day))


def backfill_day_rollups(conn: sqlite3.Connection) -> int:
    """Derive every hour and day rollup of this module from the stored hour rollups and sessions.

    **Writes**, in the caller's transaction. The migration that adds the tables runs it.

    Returns:
        The number of days rebuilt.
    """
    hours = conn.execute(
        "SELECT DISTINCT app_id, hour FROM analytics_hourly "
        "UNION SELECT DISTINCT app_id, CAST(started_at / 3600 AS INTEGER) * 3600 FROM analytics_sessions"
    ).fetchall()
    for app_id, hour in hours:
        derive_hour(conn, app_id, hour)
    days = 0
    while queued := dirty_days(conn, 100):
        for app_id, day in queued:
            rebuild_day(conn, app_id, day)
        days += len(queued)
    if hours:
        logger.info("analytics day rollups backfilled hours=%d days=%d", len(hours), days)
    return days


def read_counts(
    conn: sqlite3.Connection, metric: str, parts: WindowParts, filters: Sequence[tuple[str, str]] = ()
) -> list[CountRow]:
    """Return `(app_version, platform, key1, key2, count, total)` of `metric` summed over a window. **Read-only.**"""
    extra = "".join(f" AND {column} = ?" for column, _ in filters)
    values = [value for _, value in filters]
    selects: list[str] = []
    params: list[object] = []
    columns = "app_version, platform, key1, key2, count, total"
    if parts.days:
        selects.append(f"SELECT {columns} FROM analytics_daily WHERE metric = ? AND day >= ? AND day < ?{extra}")
        params += [metric, *parts.days, *values]
    for first, end in parts.hours:
        selects.append(f"SELECT {columns} FROM analytics_hourly WHERE metric = ? AND hour >= ? AND hour < ?{extra}")
        params += [metric, first, end, *values]
    if not selects:
        return []
    return conn.execute(
        "SELECT app_version, platform, key1, key2, sum(count), sum(total) FROM ("
        + " UNION ALL ".join(selects)
        + ") GROUP BY app_version, platform, key1, key2",
        params,
    ).fetchall()


def _rebuild_day_hist(conn: sqlite3.Connection, app_id: str, day: int) -> None:
    merged: dict[Series, dict[int, int]] = {}
    for version, platform, metric, key1, key2, blob in conn.execute(
        "SELECT app_version, platform, metric, key1, key2, hist FROM analytics_hist_packed "
        "WHERE span = ? AND start >= ? AND start < ? AND app_id = ?",
        (HOUR, day, day + DAY, app_id),
    ):
        merge_packed(merged.setdefault((version, platform, metric, key1, key2), {}), blob)
    replace_packed(conn, DAY, day, app_id, merged.items())
