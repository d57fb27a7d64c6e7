"""Tests for `storage.status`: heartbeat, daemon state, collector statuses, file sizes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from collectors.base import CollectorStatus
from storage import (
    Heartbeat,
    StoreSize,
    daemon_state,
    read_collector_statuses,
    read_heartbeat,
    store_size,
    write_collector_statuses,
    write_heartbeat,
)
from tests.storage.conftest import T0


def _heartbeat(updated_at: float) -> Heartbeat:
    return Heartbeat(pid=4242, host="ops-1", started_at=T0, updated_at=updated_at, version="0.1.0")


def test_heartbeat_absent(store: sqlite3.Connection) -> None:
    """A store no daemon wrote to has no heartbeat."""
    assert read_heartbeat(store) is None


def test_heartbeat_roundtrip(store: sqlite3.Connection) -> None:
    """The newest heartbeat replaces the previous one and reads back unchanged."""
    write_heartbeat(store, _heartbeat(T0 + 5))
    write_heartbeat(store, _heartbeat(T0 + 10))
    assert read_heartbeat(store) == _heartbeat(T0 + 10)
    assert store.execute("SELECT count(*) FROM heartbeat").fetchone()[0] == 1


@pytest.mark.parametrize(
    ("updated_at", "now", "expected"),
    [
        (T0, T0, "running"),
        (T0, T0 + 15, "running"),
        (T0, T0 + 15.001, "stale"),
        (T0 + 3, T0, "running"),
    ],
)
def test_daemon_state(updated_at: float, now: float, expected: str) -> None:
    """A heartbeat is running up to stale_after seconds old, stale after that."""
    assert daemon_state(_heartbeat(updated_at), now, stale_after=15.0) == expected


def test_daemon_state_absent() -> None:
    """Without a heartbeat the daemon is absent."""
    assert daemon_state(None, T0, stale_after=15.0) == "absent"


def test_collector_statuses_roundtrip(store: sqlite3.Connection) -> None:
    """Collector statuses read back with every field, including unavailable sources."""
    statuses = [
        CollectorStatus(
            name="system",
            interval=5.0,
            last_run=T0,
            last_duration_ms=12.5,
            last_error=None,
            last_sample_count=40,
            runs=10,
            failures=1,
            unavailable={"sensors": "not supported on this host"},
        ),
        CollectorStatus(name="self_health", interval=5.0, last_error="timed out after 4s"),
    ]
    write_collector_statuses(store, statuses)
    assert read_collector_statuses(store) == sorted(statuses, key=lambda s: s.name)


def test_collector_statuses_replace(store: sqlite3.Connection) -> None:
    """Writing statuses replaces the stored set, so removed collectors disappear."""
    write_collector_statuses(store, [CollectorStatus("system", 5.0), CollectorStatus("old", 5.0)])
    write_collector_statuses(store, [CollectorStatus("system", 5.0, runs=2)])
    assert [(s.name, s.runs) for s in read_collector_statuses(store)] == [("system", 2)]


def test_store_size(tmp_path: Path, store: sqlite3.Connection) -> None:
    """store_size reports the database and WAL files of the data directory."""
    write_heartbeat(store, _heartbeat(T0))
    size = store_size(tmp_path)
    assert size.db_bytes > 0
    assert size.wal_bytes > 0


def test_store_size_missing(tmp_path: Path) -> None:
    """A data directory without a store reports zero bytes."""
    assert store_size(tmp_path / "empty") == StoreSize(db_bytes=0, wal_bytes=0)
