"""Read-only views of a daemon's store for end-to-end tests, and waits built on them.

Each call opens the SQLite file with `mode=ro` and closes it before returning, so
a test never keeps a read transaction open that pins the WAL. A read-only connection
also never checkpoints, so reading the store between a SIGKILL and the restart
leaves the files exactly as the killed daemon left them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from storage.alerts import AlertRecord, list_alerts, read_engine_state
from storage.db import DB_FILENAME
from tests.e2e.processes import poll

__all__ = ["OutboxEntry", "alerts", "last_tick", "outbox", "settle"]


@dataclass(frozen=True)
class OutboxEntry:
    """One outbox row: one notice for one channel."""

    channel: str
    kind: str
    notice_id: str
    status: str
    attempts: int
    alert_id: str | None


@contextmanager
def _read_only(data_dir: Path) -> Iterator[sqlite3.Connection | None]:
    path = data_dir / DB_FILENAME
    if not path.exists():
        yield None
        return
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0, isolation_level=None)) as conn:
        yield conn


def outbox(data_dir: Path) -> list[OutboxEntry]:
    """Return every outbox row in insertion order; empty before the store exists."""
    with _read_only(data_dir) as conn:
        if conn is None:
            return []
        try:
            rows = conn.execute(
                "SELECT channel, kind, notice_id, status, attempts, alert_id FROM outbox ORDER BY id"
            ).fetchall()
        except sqlite3.OperationalError:
            # The daemon has not created the table yet.
            return []
    return [OutboxEntry(*row) for row in rows]


def alerts(data_dir: Path) -> list[AlertRecord]:
    """Return every stored alert instance, inactive ones included."""
    with _read_only(data_dir) as conn:
        if conn is None:
            return []
        try:
            return list_alerts(conn, include_inactive=True)
        except sqlite3.OperationalError:
            return []


def last_tick(data_dir: Path) -> float | None:
    """Return the time of the alert service's latest evaluation, None before the first."""
    with _read_only(data_dir) as conn:
        if conn is None:
            return None
        try:
            return read_engine_state(conn).last_tick
        except sqlite3.OperationalError:
            return None


def settle(data_dir: Path, *, ticks: int, interval: float, timeout: float = 15.0) -> bool:
    """Wait until the daemon evaluated `ticks` more times and no outbox row is pending.

    A notice created by one of those evaluations is queued in the same transaction,
    so once both hold, anything the daemon was going to send by then has been
    attempted and recorded. Returns False after `timeout`.
    """
    start = last_tick(data_dir) or 0.0
    # The tick times are spaced by exactly `interval`, so this is `ticks` further cycles.
    target = start + ticks * interval - interval / 2

    def quiet() -> bool:
        latest = last_tick(data_dir)
        if latest is None or latest < target:
            return False
        return all(entry.status != "pending" for entry in outbox(data_dir))

    return poll(quiet, timeout)
