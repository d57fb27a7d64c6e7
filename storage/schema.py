"""The store's schema as an ordered list of migrations.

`storage.db.migrate` applies these in version order, each in one transaction
together with its row in the `migrations` table. Invariants: a released migration is
never edited or renumbered, only followed by a new one. Columns named `*_ms` hold
UTC epoch milliseconds (see `storage._timestamps`), and other time columns hold
UTC epoch seconds as REAL.

Tables:

- `series`: one row per metric name and label set. `labels` is the canonical JSON
  of the sorted label pairs (`[["mount","/"]]`). AUTOINCREMENT keeps an id from
  being reused after retention deletes its series, so a writer's cached id can
  never point at a different series.
- `samples`: raw readings keyed by `(series_id, ts_ms)` without rowid, so a
  per-series time range is one primary-key range scan.
- `rollup_1m`, `rollup_1h`: min, max, sum and count per series and bucket; the
  average is `sum_value / sample_count`. `rollup_state` stores each table's
  watermark, the end of the newest complete bucket rolled up.
- `heartbeat`: the single row the daemon refreshes while it runs.
- `collector_status`: the latest `CollectorStatus` of each collector.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["MIGRATIONS", "Migration"]


class Migration(NamedTuple):
    """One schema step."""

    version: int
    """Position in the sequence; versions strictly increase."""
    name: str
    """Short description, stored in the `migrations` table."""
    apply: tuple[str, ...] | Callable[[sqlite3.Connection], None]
    """SQL statements run in order, or a callable run inside the migration's transaction."""


_SERIES_AND_SAMPLES = (
    """
    CREATE TABLE series (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        UNIQUE (name, labels)
    )
    """,
    """
    CREATE TABLE samples (
        series_id INTEGER NOT NULL REFERENCES series (id),
        ts_ms INTEGER NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (series_id, ts_ms)
    ) WITHOUT ROWID
    """,
)

_ROLLUP_COLUMNS = """
        series_id INTEGER NOT NULL REFERENCES series (id),
        bucket_ms INTEGER NOT NULL,
        min_value REAL NOT NULL,
        max_value REAL NOT NULL,
        sum_value REAL NOT NULL,
        sample_count INTEGER NOT NULL,
        PRIMARY KEY (series_id, bucket_ms)
"""

_ROLLUPS = (
    f"CREATE TABLE rollup_1m ({_ROLLUP_COLUMNS}) WITHOUT ROWID",
    f"CREATE TABLE rollup_1h ({_ROLLUP_COLUMNS}) WITHOUT ROWID",
    """
    CREATE TABLE rollup_state (
        table_name TEXT PRIMARY KEY,
        watermark_ms INTEGER NOT NULL
    )
    """,
)

_DAEMON_STATUS = (
    """
    CREATE TABLE heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        version TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE collector_status (
        name TEXT PRIMARY KEY,
        interval REAL NOT NULL,
        last_run REAL,
        last_duration_ms REAL,
        last_error TEXT,
        last_sample_count INTEGER NOT NULL,
        runs INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        unavailable TEXT NOT NULL
    )
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "series and raw samples", _SERIES_AND_SAMPLES),
    Migration(2, "minute and hour rollups", _ROLLUPS),
    Migration(3, "heartbeat and collector status", _DAEMON_STATUS),
)
"""Every migration, in version order."""
