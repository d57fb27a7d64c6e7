"""Tests for `range_query(..., step=)`: the tier a step selects and the buckets it makes.

The fixture is the one of `test_ranges.py`: `cpu_usage` = i at T0 + i min, with the
minute rollups shifted by +1000 and the hour rollups by +2000, so each point's value
shows which tier it came from.
"""

from __future__ import annotations

import sqlite3

import pytest

from storage import range_query
from tests.storage.conftest import T0
from tests.storage.test_ranges import END, HOUR, MINUTE, marked  # noqa: F401 - fixture


def test_step_minute_tier(marked: sqlite3.Connection) -> None:  # noqa: F811
    """A 5 min step reads minute rollups merged into 5 min buckets."""
    [series] = range_query(marked, "cpu_usage", T0, T0 + 30 * MINUTE, step=300)

    assert series.tier == "minute"
    assert series.resolution == 300.0
    assert [p.ts for p in series.points] == [T0 + i * 300 for i in range(7)]
    assert series.points[0].value == 1002.0


def test_step_hour_tier(marked: sqlite3.Connection) -> None:  # noqa: F811
    """A 1 h step reads hour rollups."""
    [series] = range_query(marked, "cpu_usage", T0, T0 + 5 * HOUR, step=3600)

    assert series.tier == "hour"
    assert series.resolution == 3600.0
    assert series.points[0].value == 2029.5


def test_step_not_minute_multiple_raw(marked: sqlite3.Connection) -> None:  # noqa: F811
    """A 90 s step is no multiple of a minute, so raw samples are bucketed by 90 s."""
    [series] = range_query(marked, "cpu_usage", END - 9 * MINUTE, END, step=90)

    assert series.tier == "raw"
    assert series.resolution == 90.0
    assert all(p.value < 1000 for p in series.points)
    assert all(p.ts % 90 == 0 for p in series.points)


def test_step_raw_expired_rounds_up(marked: sqlite3.Connection) -> None:  # noqa: F811
    """When raw samples expired, a 90 s step falls back to minutes and widens to 120 s."""
    marked.execute("DELETE FROM samples WHERE ts_ms < ?", (round((T0 + 300 * MINUTE) * 1000),))

    [series] = range_query(marked, "cpu_usage", T0 + 200 * MINUTE, T0 + 210 * MINUTE, step=90)

    assert series.tier == "minute"
    assert series.resolution == 120.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step": 0}, "invalid step 0"),
        ({"step": -5}, "invalid step -5"),
        ({"step": 60, "max_points": 10}, "either max_points or step"),
    ],
)
def test_step_invalid(marked: sqlite3.Connection, kwargs: dict[str, float], message: str) -> None:  # noqa: F811
    """A non-positive step, or a step together with max_points, raises ValueError."""
    with pytest.raises(ValueError, match=message):
        range_query(marked, "cpu_usage", T0, END, **kwargs)
