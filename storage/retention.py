"""Retention: deletion of expired raw samples, rollups and empty series in small batches.

The daemon's maintenance loop calls `apply_retention` after `update_rollups`
(re-exported by `storage.metrics`). Invariants:

- Each batch deletes at most `batch_size` rows in its own BEGIN IMMEDIATE
  transaction, so the collector's writer waits at most one short batch for the lock.
- Raw samples are deleted only before the minute watermark, and minute rollups only
  before the hour watermark. Data that is not rolled up yet is therefore never lost,
  even when rollups fell behind.
- Deletes walk the `(series_id, time)` primary keys series by series, so they never
  scan a whole table.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque

from storage._timestamps import to_ms
from storage.db import transaction
from storage.rollups import read_watermarks

__all__ = ["apply_retention"]

logger = logging.getLogger(__name__)

_DELETE_OLD = """
    DELETE FROM {table}
     WHERE series_id = ?1 AND {column} IN (
        SELECT {column} FROM {table}
         WHERE series_id = ?1 AND {column} < ?2
         ORDER BY {column}
         LIMIT ?3)
"""

_DELETE_EMPTY_SERIES = """
    DELETE FROM series WHERE id IN (
        SELECT id FROM series AS s
         WHERE NOT EXISTS (SELECT 1 FROM samples WHERE series_id = s.id)
           AND NOT EXISTS (SELECT 1 FROM rollup_1m WHERE series_id = s.id)
           AND NOT EXISTS (SELECT 1 FROM rollup_1h WHERE series_id = s.id)
         LIMIT ?)
"""


def apply_retention(
    conn: sqlite3.Connection,
    now: float,
    raw_keep: float,
    rollup_keep: float,
    batch_size: int = 500,
) -> int:
    """Delete raw samples older than `raw_keep`, rollups older than `rollup_keep`, empty series.

    **Writes**, in batches of at most `batch_size` rows, each in its own BEGIN
    IMMEDIATE transaction. A rollup is deleted when its bucket starts before
    `now - rollup_keep`. A series is deleted once it has no raw sample and no rollup
    left. Returns the number of rows deleted from all tables.

    NOTE: raw samples are kept until `update_rollups` has rolled them up, so a store
    whose rollups never run keeps every raw sample.

    Raises:
        ValueError: a keep duration is not positive or `batch_size` is less than 1.
    """
    _check_arguments(raw_keep, rollup_keep, batch_size)
    marks = read_watermarks(conn)
    cutoffs = (
        ("samples", "ts_ms", _before_mark(to_ms(now - raw_keep), marks.get("rollup_1m"))),
        ("rollup_1m", "bucket_ms", _before_mark(to_ms(now - rollup_keep), marks.get("rollup_1h"))),
        ("rollup_1h", "bucket_ms", to_ms(now - rollup_keep)),
    )

    deleted: dict[str, int] = {}
    for table, column, cutoff in cutoffs:
        deleted[table] = 0
        if cutoff is not None:
            deleted[table] = _delete_old(conn, table, column, cutoff, batch_size)
    deleted["series"] = _delete_empty_series(conn, batch_size)

    total = sum(deleted.values())
    if total:
        logger.info(
            "retention deleted rows=%d samples=%d rollup_1m=%d rollup_1h=%d series=%d",
            total,
            deleted["samples"],
            deleted["rollup_1m"],
            deleted["rollup_1h"],
            deleted["series"],
        )
    return total


def _check_arguments(raw_keep: float, rollup_keep: float, batch_size: int) -> None:
    if raw_keep <= 0 or rollup_keep <= 0:
        raise ValueError(
            f"invalid retention raw_keep={raw_keep} rollup_keep={rollup_keep}; "
            "both must be positive seconds"
        )
    if batch_size < 1:
        raise ValueError(f"invalid batch_size {batch_size}; it must be at least 1")


def _before_mark(cutoff: int, mark: int | None) -> int | None:
    """Limit `cutoff` to the watermark of the next tier; None when nothing is rolled up."""
    return None if mark is None else min(cutoff, mark)


def _delete_old(
    conn: sqlite3.Connection, table: str, column: str, cutoff: int, batch_size: int
) -> int:
    """Delete rows of `table` with `column < cutoff`, up to `batch_size` per transaction."""
    sql = _DELETE_OLD.format(table=table, column=column)
    pending = deque(row[0] for row in conn.execute("SELECT id FROM series ORDER BY id").fetchall())
    deleted = 0
    while pending:
        with transaction(conn):
            budget = batch_size
            while pending and budget > 0:
                budget -= conn.execute(sql, (pending[0], cutoff, budget)).rowcount
                # A series that filled the whole remaining budget may have more rows.
                if budget > 0:
                    pending.popleft()
        deleted += batch_size - budget
    return deleted


def _delete_empty_series(conn: sqlite3.Connection, batch_size: int) -> int:
    deleted = 0
    while True:
        with transaction(conn):
            count = conn.execute(_DELETE_EMPTY_SERIES, (batch_size,)).rowcount
        deleted += count
        if count < batch_size:
            return deleted
