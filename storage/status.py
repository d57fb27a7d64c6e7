"""The daemon's status in the store: heartbeat, collector statuses, file sizes, checkpoints.

The daemon writes its heartbeat and collector statuses and runs checkpoints. The
console and the API read them to show "daemon: running / stale / absent" and the
store's size. Invariants: the heartbeat table contains at most one row, and
`daemon_state` decides only from the `now` it is given.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from collectors.base import CollectorStatus
from storage.db import DB_FILENAME, transaction

__all__ = [
    "CheckpointMode",
    "DaemonState",
    "Heartbeat",
    "StoreSize",
    "checkpoint",
    "clear_heartbeat",
    "daemon_state",
    "read_collector_statuses",
    "read_heartbeat",
    "store_size",
    "write_collector_statuses",
    "write_heartbeat",
]

logger = logging.getLogger(__name__)

DaemonState = Literal["running", "stale", "absent"]
"""State of the daemon derived from its heartbeat."""

CheckpointMode = Literal["PASSIVE", "TRUNCATE"]
"""SQLite checkpoint modes `checkpoint` accepts."""

_STATUS_COLUMNS = (
    "name, interval, last_run, last_duration_ms, last_error, "
    "last_sample_count, runs, failures, unavailable"
)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The daemon's proof of life, refreshed every collector interval."""

    pid: int
    """Process id of the daemon."""
    host: str
    """Host name the daemon runs on."""
    started_at: float
    """UTC epoch seconds when the daemon started."""
    updated_at: float
    """UTC epoch seconds of the latest refresh."""
    version: str
    """ATLAS version of the daemon."""


@dataclass(frozen=True, slots=True)
class StoreSize:
    """Sizes of the store's files in bytes."""

    db_bytes: int
    """Size of the database file; 0 when it does not exist."""
    wal_bytes: int
    """Size of the WAL file; 0 when it does not exist."""


def write_heartbeat(conn: sqlite3.Connection, hb: Heartbeat) -> None:
    """Store `hb` as the single heartbeat row.

    **Writes**, one BEGIN IMMEDIATE transaction (a savepoint inside the caller's).
    """
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO heartbeat (id, pid, host, started_at, updated_at, version) "
            "VALUES (1, ?, ?, ?, ?, ?)",
            (hb.pid, hb.host, hb.started_at, hb.updated_at, hb.version),
        )


def clear_heartbeat(conn: sqlite3.Connection, pid: int | None = None) -> bool:
    """Delete the heartbeat row, so readers see the daemon as "absent" at once.

    A daemon calls this on a clean stop. With `pid`, only a row written by that
    process is deleted, so a stopping daemon never removes the heartbeat of a daemon
    that has already taken over the data directory.

    **Writes**, one BEGIN IMMEDIATE transaction (a savepoint inside the caller's).

    Returns:
        True when a row was deleted.
    """
    with transaction(conn):
        if pid is None:
            cursor = conn.execute("DELETE FROM heartbeat WHERE id = 1")
        else:
            cursor = conn.execute("DELETE FROM heartbeat WHERE id = 1 AND pid = ?", (pid,))
    return cursor.rowcount > 0


def read_heartbeat(conn: sqlite3.Connection) -> Heartbeat | None:
    """Return the heartbeat row, or None if no daemon ever wrote one.

    **Read-only**, one autocommit statement.
    """
    row = conn.execute(
        "SELECT pid, host, started_at, updated_at, version FROM heartbeat WHERE id = 1"
    ).fetchone()
    return Heartbeat(*row) if row else None


def write_collector_statuses(conn: sqlite3.Connection, statuses: Iterable[CollectorStatus]) -> None:
    """Replace the stored collector statuses with `statuses`.

    **Writes**, one BEGIN IMMEDIATE transaction: rows of collectors missing from
    `statuses` are deleted, so the table lists exactly the running collectors.
    """
    rows = [_status_row(status) for status in statuses]
    with transaction(conn):
        conn.execute("DELETE FROM collector_status")
        conn.executemany(
            f"INSERT INTO collector_status ({_STATUS_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def read_collector_statuses(conn: sqlite3.Connection) -> list[CollectorStatus]:
    """Return the stored collector statuses, sorted by collector name.

    **Read-only**, one autocommit statement.
    """
    rows = conn.execute(f"SELECT {_STATUS_COLUMNS} FROM collector_status ORDER BY name").fetchall()
    return [_status_from_row(row) for row in rows]


def store_size(data_dir: Path) -> StoreSize:
    """Return the sizes of the database and WAL files in `data_dir`; reads no database."""
    db_path = data_dir / DB_FILENAME
    return StoreSize(
        db_bytes=_file_size(db_path),
        wal_bytes=_file_size(db_path.with_name(DB_FILENAME + "-wal")),
    )


def checkpoint(conn: sqlite3.Connection, mode: CheckpointMode = "PASSIVE") -> tuple[int, int, int]:
    """Copy WAL frames into the database file; return (busy, log frames, checkpointed frames).

    **Writes** the database file but opens no transaction, so call it outside one.
    Per SQLite's `sqlite3_wal_checkpoint_v2` documentation, PASSIVE never calls the
    busy handler and may stop early. TRUNCATE waits (up to `busy_timeout`) for
    writers and readers, blocks new writers meanwhile, then empties the WAL file,
    which suits a daemon shutdown. When `checkpointed` stays below `log`, a reader
    still uses an older snapshot and the WAL cannot be reset.
    """
    busy, log, done = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    logger.debug("checkpoint mode=%s busy=%d log=%d checkpointed=%d", mode, busy, log, done)
    return int(busy), int(log), int(done)


def daemon_state(hb: Heartbeat | None, now: float, stale_after: float) -> DaemonState:
    """Classify the daemon from its heartbeat at `now`.

    Returns "absent" without a heartbeat, "stale" when the latest refresh is more than
    `stale_after` seconds before `now`, else "running".
    """
    if hb is None:
        return "absent"
    if now - hb.updated_at > stale_after:
        return "stale"
    return "running"


def _status_row(status: CollectorStatus) -> tuple[object, ...]:
    return (
        status.name,
        status.interval,
        status.last_run,
        status.last_duration_ms,
        status.last_error,
        status.last_sample_count,
        status.runs,
        status.failures,
        json.dumps(status.unavailable, sort_keys=True),
    )


def _status_from_row(row: tuple[object, ...]) -> CollectorStatus:
    *fields, unavailable = row
    status = CollectorStatus(*fields)  # type: ignore[arg-type]
    status.unavailable = dict(json.loads(str(unavailable)))
    return status


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
