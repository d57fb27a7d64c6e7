"""Tests for `storage.ranges`: which tier a range reads, stitching and downsampling.

The fixture rolls up one sample per minute for 6 h 10 min. It then shifts the
stored minute rollups by +1000 and the hour rollups by +2000, while raw samples
keep their plain values, so each point's value shows which tier it came from.
"""

from __future__ import annotations

import sqlite3

import pytest

from collectors.base import Sample
from storage import range_query, update_rollups, write_samples
from tests.storage.conftest import T0

MINUTE = 60.0
HOUR = 3600.0
END = T0 + 370 * MINUTE


def _shift(conn: sqlite3.Connection, table: str, offset: float) -> None:
    conn.execute(
        f"UPDATE {table} SET min_value = min_value + ?, max_value = max_value + ?, "
        "sum_value = sum_value + ? * sample_count",
        (offset, offset, offset),
    )


@pytest.fixture
def marked(store: sqlite3.Connection) -> sqlite3.Connection:
    """A store with `cpu_usage` = i at T0 + i min (i = 0..370) and marked rollups."""
    write_samples(store, [Sample.of("cpu_usage", float(i), T0 + i * MINUTE) for i in range(371)])
    update_rollups(store, now=END + 31)
    _shift(store, "rollup_1m", 1000.0)
    _shift(store, "rollup_1h", 2000.0)
    return store


def test_short_range_raw(marked: sqlite3.Connection) -> None:
    """A short range inside raw retention returns every raw sample, unbucketed."""
    [series] = range_query(marked, "cpu_usage", END - 10 * MINUTE, END)
    assert series.resolution == 0.0
    assert [p.value for p in series.points] == [float(i) for i in range(360, 371)]
    assert [p.ts for p in series.points] == [T0 + i * MINUTE for i in range(360, 371)]


def test_expired_raw_uses_minutes(marked: sqlite3.Connection) -> None:
    """A range whose raw samples expired is served from minute rollups."""
    marked.execute("DELETE FROM samples WHERE ts_ms < ?", (round((T0 + 300 * MINUTE) * 1000),))

    [series] = range_query(marked, "cpu_usage", T0 + 200 * MINUTE, T0 + 210 * MINUTE)

    assert series.resolution == 60.0
    assert [p.value for p in series.points] == [1000.0 + i for i in range(200, 211)]


def test_max_points_minute_tier(marked: sqlite3.Connection) -> None:
    """With max_points, a 6 h range reads minute rollups, merged into 4 min buckets."""
    [series] = range_query(marked, "cpu_usage", T0, END, max_points=100)

    assert series.resolution == 240.0
    assert len(series.points) == 93
    assert series.points[0].ts == T0
    assert series.points[0].value == 1001.5
    assert series.points[0].min == 1000.0
    assert series.points[0].max == 1003.0


def test_minute_tier_raw_tail(marked: sqlite3.Connection) -> None:
    """The minute tier reads raw samples after the minute watermark, so it reaches the end."""
    [series] = range_query(marked, "cpu_usage", T0, END, max_points=100)
    last = series.points[-1]
    assert last.ts == T0 + 368 * MINUTE
    assert last.value == pytest.approx((1368 + 1369 + 370) / 3)
    assert last.max == 1369.0
    assert last.min == 370.0


def test_max_points_hour_tier(marked: sqlite3.Connection) -> None:
    """With few points, the hour tier is read, then minute rollups, then raw samples."""
    [series] = range_query(marked, "cpu_usage", T0, END, max_points=4)

    assert series.resolution == 3 * HOUR
    assert len(series.points) == 3
    # Buckets are aligned to multiples of 3 h; T0 lies 1 h after such a boundary.
    assert series.points[0].ts == T0 - HOUR
    assert series.points[0].value == pytest.approx(2000 + sum(range(120)) / 120)
    expected_last = (sum(range(300, 371)) + 2000 * 60 + 1000 * 10) / 71
    assert series.points[-1].value == pytest.approx(expected_last)


def test_max_points_bound(marked: sqlite3.Connection) -> None:
    """No series returns more than max_points points, for any requested count."""
    for max_points in (2, 3, 7, 50, 99, 100, 500, 1000):
        [series] = range_query(marked, "cpu_usage", T0 + 17, END - 3, max_points=max_points)
        assert len(series.points) <= max_points, max_points


def test_raw_tier_downsampled(store: sqlite3.Connection) -> None:
    """A short range with max_points merges raw samples; min and max keep the extremes."""
    write_samples(store, [Sample.of("load_1m", float(i % 7), T0 + i) for i in range(600)])

    [series] = range_query(store, "load_1m", T0, T0 + 599, max_points=20)

    assert len(series.points) <= 20
    assert 0.0 < series.resolution < 60.0
    assert min(p.min for p in series.points) == 0.0
    assert max(p.max for p in series.points) == 6.0
    assert all(p.min <= p.value <= p.max for p in series.points)


def test_labels_filter_and_order(store: sqlite3.Connection) -> None:
    """Each matching series gets its own range, sorted by labels; others are left out."""
    batch = []
    for i in range(5):
        for mount in ("/data", "/", "/boot"):
            batch.append(Sample.of("disk_usage", float(i), T0 + i, mount=mount, host="a"))
    batch.append(Sample.of("disk_usage", 9.0, T0, mount="/", host="b"))
    write_samples(store, batch)

    ranges = range_query(store, "disk_usage", T0, T0 + 10, labels={"host": "a"})

    assert [dict(r.labels)["mount"] for r in ranges] == ["/", "/boot", "/data"]
    assert all(len(r.points) == 5 for r in ranges)


def test_no_data_in_range(store: sqlite3.Connection) -> None:
    """A range without data, or an unknown metric, returns an empty list."""
    write_samples(store, [Sample.of("cpu_usage", 1.0, T0)])
    assert range_query(store, "cpu_usage", T0 + 10, T0 + 20) == []
    assert range_query(store, "no_such_metric", T0, T0 + 20) == []


def test_invalid_arguments(store: sqlite3.Connection) -> None:
    """An inverted range or fewer than two points raises ValueError."""
    with pytest.raises(ValueError, match="before start"):
        range_query(store, "cpu_usage", T0, T0 - 1)
    with pytest.raises(ValueError, match="at least 2"):
        range_query(store, "cpu_usage", T0, T0 + 1, max_points=1)


def test_range_leaves_no_transaction(marked: sqlite3.Connection) -> None:
    """range_query returns with no transaction open on the connection."""
    range_query(marked, "cpu_usage", T0, END, max_points=10)
    assert not marked.in_transaction
