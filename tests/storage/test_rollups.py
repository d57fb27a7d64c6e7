"""Tests for `storage.rollups`: minute and hour aggregates, completeness, idempotence, catch-up."""

from __future__ import annotations

import sqlite3

import pytest

from collectors.base import Sample
from storage import update_rollups, write_samples
from storage.rollups import ROLLUP_LAG, read_watermarks
from tests.storage.conftest import T0

MINUTE = 60.0
HOUR = 3600.0


def _write_every_10s(conn: sqlite3.Connection, start: float, count: int) -> None:
    """Write sample i at start + 10 i with value i to `cpu_usage`, and 2 i to `cpu_usage{cpu=0}`."""
    offset = round((start - T0) / 10)
    batch = []
    for i in range(offset, offset + count):
        batch.append(Sample.of("cpu_usage", float(i), T0 + 10 * i))
        batch.append(Sample.of("cpu_usage", 2.0 * i, T0 + 10 * i, cpu="0"))
    write_samples(conn, batch)


def _rollups(
    conn: sqlite3.Connection, table: str, series_id: int = 1
) -> list[tuple[float, float, float, float, int]]:
    """Return (bucket seconds, min, max, avg, count) of one series' rows in `table`."""
    rows = conn.execute(
        f"SELECT bucket_ms, min_value, max_value, sum_value, sample_count FROM {table} "
        "WHERE series_id = ? ORDER BY bucket_ms",
        (series_id,),
    ).fetchall()
    return [(ms / 1000, low, high, total / n, n) for ms, low, high, total, n in rows]


@pytest.fixture
def two_hours(store: sqlite3.Connection) -> sqlite3.Connection:
    """A store with samples every 10 s from T0 to T0 + 2 h 5 min, rolled up at that time."""
    _write_every_10s(store, T0, 6 * 125 + 1)
    update_rollups(store, now=T0 + 2 * HOUR + 5 * MINUTE)
    return store


def test_minute_aggregates(two_hours: sqlite3.Connection) -> None:
    """Each minute stores the min, max, mean and count of its six samples."""
    minutes = _rollups(two_hours, "rollup_1m")
    assert minutes[0] == (T0, 0.0, 5.0, 2.5, 6)
    assert minutes[61] == (T0 + 61 * MINUTE, 366.0, 371.0, 368.5, 6)


def test_minute_per_series(two_hours: sqlite3.Connection) -> None:
    """Each series gets its own rollup rows."""
    assert _rollups(two_hours, "rollup_1m", series_id=2)[1] == (T0 + MINUTE, 12.0, 22.0, 17.0, 6)


def test_hour_aggregates(two_hours: sqlite3.Connection) -> None:
    """Each hour combines its sixty minutes exactly: mean of all samples, not of minute means."""
    hours = _rollups(two_hours, "rollup_1h")
    assert hours == [(T0, 0.0, 359.0, 179.5, 360), (T0 + HOUR, 360.0, 719.0, 539.5, 360)]


def test_incomplete_buckets_skipped(two_hours: sqlite3.Connection) -> None:
    """The current minute, the minute within the lag and the current hour are not rolled up."""
    minutes = _rollups(two_hours, "rollup_1m")
    assert minutes[-1][0] == T0 + 2 * HOUR + 3 * MINUTE
    assert len(minutes) == 124
    assert read_watermarks(two_hours) == {
        "rollup_1m": round((T0 + 2 * HOUR + 4 * MINUTE) * 1000),
        "rollup_1h": round((T0 + 2 * HOUR) * 1000),
    }


def test_rerun_is_noop(two_hours: sqlite3.Connection) -> None:
    """A second run at the same time writes nothing and changes no row."""
    before = (_rollups(two_hours, "rollup_1m"), _rollups(two_hours, "rollup_1h"))
    assert update_rollups(two_hours, now=T0 + 2 * HOUR + 5 * MINUTE) == 0
    assert (_rollups(two_hours, "rollup_1m"), _rollups(two_hours, "rollup_1h")) == before


def test_rebuild_gives_same_rows(two_hours: sqlite3.Connection) -> None:
    """Rolling up again from scratch (watermarks reset) replaces rows with identical values."""
    before = (_rollups(two_hours, "rollup_1m"), _rollups(two_hours, "rollup_1h"))
    two_hours.execute("DELETE FROM rollup_state")
    update_rollups(two_hours, now=T0 + 2 * HOUR + 5 * MINUTE)
    assert (_rollups(two_hours, "rollup_1m"), _rollups(two_hours, "rollup_1h")) == before


def test_next_run_is_incremental(two_hours: sqlite3.Connection) -> None:
    """A run one minute later writes only the newly complete minute of each series."""
    _write_every_10s(two_hours, T0 + 2 * HOUR + 5 * MINUTE + 10, 6)
    assert update_rollups(two_hours, now=T0 + 2 * HOUR + 6 * MINUTE) == 2


def test_late_run_catches_up(two_hours: sqlite3.Connection) -> None:
    """A run hours later rolls up every minute and hour it missed, across a gap without data."""
    _write_every_10s(two_hours, T0 + 2 * HOUR + 5 * MINUTE + 10, 6 * 55 - 1)
    _write_every_10s(two_hours, T0 + 5 * HOUR, 6 * 10)

    update_rollups(two_hours, now=T0 + 6 * HOUR + MINUTE)

    minutes = _rollups(two_hours, "rollup_1m")
    hours = _rollups(two_hours, "rollup_1h")
    assert len(minutes) == 180 + 10
    assert [h[0] for h in hours] == [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 5 * HOUR]
    assert hours[2][4] == 360
    assert hours[3][4] == 60


def test_lag_waits_for_late_writes(store: sqlite3.Connection) -> None:
    """A minute that ended less than ROLLUP_LAG seconds ago is left for the next run."""
    _write_every_10s(store, T0, 7)
    assert update_rollups(store, now=T0 + MINUTE + ROLLUP_LAG - 1) == 0
    assert update_rollups(store, now=T0 + MINUTE + ROLLUP_LAG) == 2


def test_empty_store(store: sqlite3.Connection) -> None:
    """Rolling up an empty store writes nothing and sets no watermark."""
    assert update_rollups(store, now=T0) == 0
    assert read_watermarks(store) == {}


def test_backlog_in_chunks(store: sqlite3.Connection) -> None:
    """A two-hour backlog of minutes is rolled up in several short transactions."""
    _write_every_10s(store, T0, 6 * 120)
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    update_rollups(store, now=T0 + 2 * HOUR + MINUTE)
    store.set_trace_callback(None)
    assert statements.count("BEGIN IMMEDIATE") == 12 + 1
