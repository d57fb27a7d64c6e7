"""Tests for `storage.retention`: expiry of raw samples, rollups and empty series, in batches."""

from __future__ import annotations

import sqlite3

import pytest

from collectors.base import Sample
from storage import apply_retention, list_series, update_rollups, write_samples
from tests.storage.conftest import T0

MINUTE = 60.0
HOUR = 3600.0
DAY = 24 * HOUR


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _oldest(conn: sqlite3.Connection, table: str, column: str) -> float:
    return float(conn.execute(f"SELECT min({column}) FROM {table}").fetchone()[0]) / 1000


@pytest.fixture
def three_hours(store: sqlite3.Connection) -> sqlite3.Connection:
    """Three series with one sample per minute from T0 to T0 + 3 h, rolled up."""
    batch = []
    for i in range(181):
        for cpu in ("0", "1", "2"):
            batch.append(Sample.of("cpu_usage", float(i), T0 + i * MINUTE, cpu=cpu))
    write_samples(store, batch)
    update_rollups(store, now=T0 + 3 * HOUR + MINUTE)
    return store


def test_raw_expired(three_hours: sqlite3.Connection) -> None:
    """Raw samples older than raw_keep are deleted; newer ones stay."""
    apply_retention(three_hours, now=T0 + 3 * HOUR, raw_keep=HOUR, rollup_keep=DAY)
    assert _oldest(three_hours, "samples", "ts_ms") == T0 + 2 * HOUR
    assert _count(three_hours, "samples") == 3 * 61


def test_rollups_expired(three_hours: sqlite3.Connection) -> None:
    """Minute and hour rollups whose bucket starts before now - rollup_keep are deleted."""
    apply_retention(three_hours, now=T0 + 3 * HOUR, raw_keep=HOUR, rollup_keep=2 * HOUR)
    assert _oldest(three_hours, "rollup_1m", "bucket_ms") == T0 + HOUR
    assert _oldest(three_hours, "rollup_1h", "bucket_ms") == T0 + HOUR
    assert _count(three_hours, "rollup_1h") == 3 * 2


def test_returns_deleted_rows(three_hours: sqlite3.Connection) -> None:
    """The return value is the number of rows deleted from all tables."""
    deleted = apply_retention(three_hours, now=T0 + 3 * HOUR, raw_keep=HOUR, rollup_keep=2 * HOUR)
    assert deleted == 3 * 120 + 3 * 60 + 3 * 1


def test_deletes_in_batches(three_hours: sqlite3.Connection) -> None:
    """With batch_size 50, 360 expired samples take 8 transactions of at most 50 rows."""
    statements: list[str] = []
    three_hours.set_trace_callback(statements.append)
    apply_retention(three_hours, now=T0 + 3 * HOUR, raw_keep=HOUR, rollup_keep=DAY, batch_size=50)
    three_hours.set_trace_callback(None)

    # 8 batches for samples, one each for the minute and hour rollups and the series.
    assert statements.count("BEGIN IMMEDIATE") == 8 + 3
    assert _count(three_hours, "samples") == 3 * 61


def test_empty_series_removed(three_hours: sqlite3.Connection) -> None:
    """A series whose samples and rollups all expired is deleted; active ones stay."""
    write_samples(three_hours, [Sample.of("swap_usage", 1.0, T0 + 10 * HOUR)])
    update_rollups(three_hours, now=T0 + 11 * HOUR)

    apply_retention(three_hours, now=T0 + 12 * HOUR, raw_keep=HOUR, rollup_keep=2 * HOUR)

    assert list_series(three_hours) == [("swap_usage", ())]


def test_unrolled_raw_kept(store: sqlite3.Connection) -> None:
    """Raw samples not rolled up yet are kept even when older than raw_keep."""
    write_samples(store, [Sample.of("cpu_usage", float(i), T0 + i * MINUTE) for i in range(10)])
    apply_retention(store, now=T0 + DAY, raw_keep=HOUR, rollup_keep=DAY)
    assert _count(store, "samples") == 10


def test_rerun_deletes_nothing(three_hours: sqlite3.Connection) -> None:
    """A second run at the same time finds nothing left to delete."""
    apply_retention(three_hours, now=T0 + 3 * HOUR, raw_keep=HOUR, rollup_keep=2 * HOUR)
    assert apply_retention(three_hours, now=T0 + 3 * HOUR, raw_keep=HOUR, rollup_keep=2 * HOUR) == 0


def test_invalid_arguments(store: sqlite3.Connection) -> None:
    """Non-positive keep durations and batch sizes raise ValueError."""
    with pytest.raises(ValueError, match="raw_keep"):
        apply_retention(store, now=T0, raw_keep=0, rollup_keep=DAY)
    with pytest.raises(ValueError, match="batch_size"):
        apply_retention(store, now=T0, raw_keep=HOUR, rollup_keep=DAY, batch_size=0)
