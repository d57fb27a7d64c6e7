"""Per-minute and per-hour rollups of raw samples, built incrementally from a watermark.

The daemon's maintenance loop calls `update_rollups`; `storage.ranges` reads the
rollup tables for long ranges, and `storage.retention` keeps raw data that is not
rolled up yet. Invariants:

- A rollup row stores min, max, sum and count of one series in one bucket, so
  averages combine exactly (`sum / count`) when buckets are merged.
- `rollup_state.watermark_ms` of a table is the end of the newest bucket rolled up.
  Every bucket before it is final, and nothing at or after it is in the table.
- Minute buckets come from raw samples. Hour buckets come from minute rollups and
  only up to the minute watermark, so an hour is built only from complete minutes.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from storage._timestamps import HOUR_MS, MINUTE_MS, floor_ms, to_ms
from storage.db import transaction

__all__ = ["ROLLUP_LAG", "read_watermarks", "update_rollups"]

logger = logging.getLogger(__name__)

ROLLUP_LAG = 30.0
"""Seconds a minute must be over before it is rolled up.

A collector cycle is stamped when it starts and committed after its collect and
write finish (within the collector timeout, 4 s by default). Waiting this long keeps
a slow cycle's samples inside its minute's rollup."""


@dataclass(frozen=True)
class _Rollup:
    table: str
    bucket_ms: int
    chunk_ms: int
    """Span rolled up per transaction, so a large backlog never holds the write lock long."""
    insert_sql: str
    oldest_sql: str


_MINUTE = _Rollup(
    table="rollup_1m",
    bucket_ms=MINUTE_MS,
    chunk_ms=10 * MINUTE_MS,
    insert_sql=f"""
        INSERT OR REPLACE INTO rollup_1m
            (series_id, bucket_ms, min_value, max_value, sum_value, sample_count)
        SELECT p.series_id, p.ts_ms / {MINUTE_MS} * {MINUTE_MS},
               min(p.value), max(p.value), sum(p.value), count(*)
          FROM series AS s
         CROSS JOIN samples AS p
            ON p.series_id = s.id AND p.ts_ms >= ? AND p.ts_ms < ?
         GROUP BY p.series_id, p.ts_ms / {MINUTE_MS}
    """,
    oldest_sql="""
        SELECT min((SELECT min(ts_ms) FROM samples WHERE series_id = s.id AND ts_ms >= ?))
          FROM series AS s
    """,
)

_HOUR = _Rollup(
    table="rollup_1h",
    bucket_ms=HOUR_MS,
    chunk_ms=6 * HOUR_MS,
    insert_sql=f"""
        INSERT OR REPLACE INTO rollup_1h
            (series_id, bucket_ms, min_value, max_value, sum_value, sample_count)
        SELECT r.series_id, r.bucket_ms / {HOUR_MS} * {HOUR_MS},
               min(r.min_value), max(r.max_value), sum(r.sum_value), sum(r.sample_count)
          FROM series AS s
         CROSS JOIN rollup_1m AS r
            ON r.series_id = s.id AND r.bucket_ms >= ? AND r.bucket_ms < ?
         GROUP BY r.series_id, r.bucket_ms / {HOUR_MS}
    """,
    oldest_sql="""
        SELECT min((SELECT min(bucket_ms) FROM rollup_1m WHERE series_id = s.id AND bucket_ms >= ?))
          FROM series AS s
    """,
)


def update_rollups(conn: sqlite3.Connection, now: float, lag: float = ROLLUP_LAG) -> int:
    """Roll up every complete minute and hour since the watermarks; return rows written.

    **Writes**, one BEGIN IMMEDIATE transaction per chunk (10 minutes of raw samples or
    6 hours of minute rollups) that stores the rollup rows and advances the watermark
    together. A run only reads data after the watermark, so its cost follows the new
    data, not the table size. Gaps without data are skipped. Running it again with
    the same `now` writes nothing.

    NOTE: a sample written after its minute was rolled up (later than `lag` seconds
    after the minute ended) stays in the raw table but is missing from the rollups.

    Args:
        conn: store connection.
        now: UTC epoch seconds; a minute is complete once it ended `lag` seconds ago.
        lag: seconds to wait for late writes before a minute counts as complete.
    """
    written = _roll(conn, _MINUTE, floor_ms(to_ms(now - lag), MINUTE_MS))
    minute_mark = read_watermarks(conn).get(_MINUTE.table)
    if minute_mark is not None:
        written += _roll(conn, _HOUR, floor_ms(minute_mark, HOUR_MS))
    return written


def read_watermarks(conn: sqlite3.Connection) -> dict[str, int]:
    """Return the watermark in milliseconds of each rollup table that has one.

    **Read-only**, one autocommit statement (or the caller's transaction).
    """
    rows = conn.execute("SELECT table_name, watermark_ms FROM rollup_state").fetchall()
    return {str(name): int(mark) for name, mark in rows}


def _roll(conn: sqlite3.Connection, rollup: _Rollup, until_ms: int) -> int:
    written = 0
    mark = read_watermarks(conn).get(rollup.table)
    start = _next_start(conn, rollup, mark, until_ms)
    while start is not None:
        mark = min(start + rollup.chunk_ms, until_ms)
        with transaction(conn):
            written += conn.execute(rollup.insert_sql, (start, mark)).rowcount
            _set_watermark(conn, rollup.table, mark)
        start = _next_start(conn, rollup, mark, until_ms)

    # No data is left before `until_ms`, so every bucket up to it is final. Moving
    # the watermark lets the hour of a series that stopped mid-hour be completed.
    if mark is not None and mark < until_ms:
        with transaction(conn):
            _set_watermark(conn, rollup.table, until_ms)

    logger.debug("rollups updated table=%s rows=%d", rollup.table, written)
    return written


def _set_watermark(conn: sqlite3.Connection, table: str, mark: int) -> None:
    conn.execute(
        "INSERT INTO rollup_state (table_name, watermark_ms) VALUES (?, ?) "
        "ON CONFLICT (table_name) DO UPDATE SET watermark_ms = excluded.watermark_ms",
        (table, mark),
    )


def _next_start(
    conn: sqlite3.Connection, rollup: _Rollup, mark: int | None, until_ms: int
) -> int | None:
    """Return the start of the next bucket with data before `until_ms`, or None."""
    since = 0 if mark is None else mark
    if since >= until_ms:
        return None
    oldest = conn.execute(rollup.oldest_sql, (since,)).fetchone()[0]
    if oldest is None or oldest >= until_ms:
        return None
    return max(since, floor_ms(int(oldest), rollup.bucket_ms))
