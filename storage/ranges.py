"""Range queries over time series at the best available resolution, downsampled on request.

The console's charts and the API's history endpoints call `range_query`
(re-exported by `storage.metrics`). It reads one of three tiers:

- raw: raw samples only;
- minute: `rollup_1m` up to the minute watermark, then raw samples;
- hour: `rollup_1h` up to the hour watermark, then `rollup_1m`, then raw samples.

Each tier therefore reaches up to `end`, even though rollups trail the clock.
Invariants: a point's `ts` is the start of its bucket, and `value` is the exact
mean of the samples in it (sums and counts are merged, never averages of averages).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from collectors.base import Labels
from storage._series import SeriesRow, find_series, ids_json
from storage._timestamps import HOUR_MS, MINUTE_MS, floor_ms, from_ms, to_ms
from storage.db import transaction
from storage.rollups import read_watermarks

__all__ = ["POINT_LIMIT", "Point", "SeriesRange", "range_query"]

POINT_LIMIT = 10_000
"""Points per series a query without `max_points` may return from raw samples or
minute rollups; above it, the next coarser tier is read."""


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a range: a raw sample, or the aggregate of one bucket."""

    ts: float
    """UTC epoch seconds: the sample's time, or the bucket's start."""
    value: float
    """The sample, or the mean of the bucket."""
    min: float
    """Smallest sample in the bucket (the sample itself for a raw point)."""
    max: float
    """Largest sample in the bucket (the sample itself for a raw point)."""


@dataclass(frozen=True, slots=True)
class SeriesRange:
    """The points of one series over a range."""

    name: str
    """Metric name."""
    labels: Labels
    """Sorted label pairs of the series."""
    resolution: float
    """Seconds per point (bucket width); 0.0 when raw samples are returned one by one."""
    points: tuple[Point, ...]
    """Points in time order."""
    tier: str = "raw"
    """Table the points were read from, finest first: `raw`, `minute` (rollups up to
    the minute watermark, raw samples after it) or `hour` (hour, then minute rollups,
    then raw samples)."""


@dataclass(frozen=True)
class _Tier:
    name: str
    resolution_ms: int
    """Bucket width of the tier's own table; 0 for raw samples."""


_RAW = _Tier("raw", 0)
_MINUTE = _Tier("minute", MINUTE_MS)
_HOUR = _Tier("hour", HOUR_MS)
_TIERS = (_RAW, _MINUTE, _HOUR)

_ROLLUP_PART = """
    SELECT r.series_id, r.bucket_ms, r.min_value, r.max_value, r.sum_value, r.sample_count
      FROM ids CROSS JOIN {table} AS r
        ON r.series_id = ids.id AND r.bucket_ms >= ?{low} AND r.bucket_ms < ?{high}
"""

# Parameters: ?1 series ids (JSON), ?2 start of the tier, ?3 end of the hour part,
# ?4 end of the minute part, ?5 end of the range (inclusive), ?6 bucket width in ms.
_RANGE = f"""
    WITH ids (id) AS (SELECT value FROM json_each(?1)),
    parts (series_id, ts_ms, low, high, total, n) AS (
        {_ROLLUP_PART.format(table="rollup_1h", low=2, high=3)}
        UNION ALL
        {_ROLLUP_PART.format(table="rollup_1m", low=3, high=4)}
        UNION ALL
        SELECT p.series_id, p.ts_ms, p.value, p.value, p.value, 1
          FROM ids CROSS JOIN samples AS p
            ON p.series_id = ids.id AND p.ts_ms >= ?4 AND p.ts_ms <= ?5
    )
    SELECT series_id, ts_ms / ?6 * ?6 AS bucket, min(low), max(high), sum(total), sum(n)
      FROM parts
     GROUP BY series_id, bucket
     ORDER BY series_id, bucket
"""

_OLDEST_PART = """
    (SELECT min(m) FROM (
        SELECT (SELECT min({column}) FROM {table} WHERE series_id = j.value) AS m
          FROM json_each(?1) AS j))
"""

_OLDEST = (
    "SELECT "
    + _OLDEST_PART.format(column="ts_ms", table="samples")
    + ", "
    + _OLDEST_PART.format(column="bucket_ms", table="rollup_1m")
    + ", "
    + _OLDEST_PART.format(column="bucket_ms", table="rollup_1h")
)

_RAW_COUNT = """
    SELECT count(*) FROM (
        SELECT 1 FROM json_each(?) AS j
         CROSS JOIN samples AS p
            ON p.series_id = j.value AND p.ts_ms >= ? AND p.ts_ms <= ?
         LIMIT ?)
"""


def range_query(
    conn: sqlite3.Connection,
    name: str,
    start: float,
    end: float,
    labels: Mapping[str, str] | None = None,
    max_points: int | None = None,
    step: float | None = None,
) -> list[SeriesRange]:
    """Return the points of each matching series over `[start, end]`, sorted by labels.

    **Read-only**, one short deferred transaction. The tier is chosen in two steps:

    1. The cheapest tier that still gives the detail asked for. With `max_points`,
       that is the coarsest tier whose buckets are no wider than `(end - start) /
       max_points`. Without it, raw samples are used when the range has at most
       `POINT_LIMIT` of them per series on average, else minute rollups, or hour
       rollups when minutes would exceed `POINT_LIMIT`.
    2. If that tier's data starts after `start` (raw samples expired), the next
       coarser tier that reaches back to `start` is used instead.

    With `max_points`, points are merged into buckets aligned to multiples of the
    bucket width, so at most `max_points` points per series come back and a chart
    keeps stable buckets between refreshes. Series without data in the range are
    left out.

    With `step` (seconds) instead, the preferred tier is the coarsest one whose bucket
    width divides `step`, and points are merged into buckets of `step` aligned to its
    multiples. When step 2 falls back to a coarser tier, the width is rounded up to a
    multiple of that tier's buckets. `SeriesRange.resolution` gives the width used.

    Raises:
        ValueError: `end` is before `start`, `max_points` is less than 2, `step` is
            not positive, or both `max_points` and `step` are given.
    """
    _check_arguments(start, end, max_points, step)
    start_ms, end_ms = to_ms(start), to_ms(end)

    with transaction(conn, immediate=False):
        series = find_series(conn, name, labels)
        if not series:
            return []
        ids = ids_json(series)
        tier = _choose_tier(conn, ids, len(series), start_ms, end_ms, max_points, step)
        low = floor_ms(start_ms, max(tier.resolution_ms, 1))
        step_ms = _step_ms(tier, end_ms - low, max_points, step)
        bounds = _bounds(tier, read_watermarks(conn), low, end_ms)
        rows = conn.execute(_RANGE, (ids, *bounds, end_ms, step_ms)).fetchall()

    return _series_ranges(series, rows, step_ms, tier)


def _check_arguments(start: float, end: float, max_points: int | None, step: float | None) -> None:
    if end < start:
        raise ValueError(f"invalid range: end {end} is before start {start}")
    if max_points is not None and max_points < 2:
        raise ValueError(f"invalid max_points {max_points}; ask for at least 2 points")
    if step is not None and max_points is not None:
        raise ValueError("give either max_points or step, not both")
    if step is not None and not step > 0:
        raise ValueError(f"invalid step {step}; it must be positive seconds")


def _choose_tier(
    conn: sqlite3.Connection,
    ids: str,
    series_count: int,
    start_ms: int,
    end_ms: int,
    max_points: int | None,
    step: float | None = None,
) -> _Tier:
    preferred = _preferred_tier(conn, ids, series_count, start_ms, end_ms, max_points, step)
    oldest = _effective_oldest(conn, ids)
    candidates = _TIERS[_TIERS.index(preferred) :]
    for tier in candidates:
        first = oldest[tier.name]
        if first is not None and first <= start_ms:
            return tier

    # Nothing reaches back to `start`: take the tier with the longest history, the
    # finest one when several start at the same time.
    def history(tier: _Tier) -> tuple[bool, int, int]:
        first = oldest[tier.name]
        return (first is None, first or 0, tier.resolution_ms)

    return min(candidates, key=history)


def _preferred_tier(
    conn: sqlite3.Connection,
    ids: str,
    series_count: int,
    start_ms: int,
    end_ms: int,
    max_points: int | None,
    step: float | None = None,
) -> _Tier:
    span_ms = end_ms - start_ms
    if step is not None:
        step_ms = to_ms(step)
        return max((t for t in _TIERS if step_ms % max(t.resolution_ms, 1) == 0), key=lambda t: t.resolution_ms)
    if max_points is not None:
        width = span_ms / max_points
        return max((t for t in _TIERS if t.resolution_ms <= width), key=lambda t: t.resolution_ms)

    budget = POINT_LIMIT * series_count
    raw_points = conn.execute(_RAW_COUNT, (ids, start_ms, end_ms, budget + 1)).fetchone()[0]
    if raw_points <= budget:
        return _RAW
    return _MINUTE if span_ms / MINUTE_MS <= POINT_LIMIT else _HOUR


def _effective_oldest(conn: sqlite3.Connection, ids: str) -> dict[str, int | None]:
    """Return the oldest timestamp each tier can serve, counting the finer tiers it reads."""
    raw, minute, hour = conn.execute(_OLDEST, (ids,)).fetchone()
    return {
        _RAW.name: raw,
        _MINUTE.name: _min_present(minute, raw),
        _HOUR.name: _min_present(hour, minute, raw),
    }


def _step_ms(tier: _Tier, span_ms: int, max_points: int | None, step: float | None = None) -> int:
    unit = max(tier.resolution_ms, 1)
    if step is not None:
        return max(unit, math.ceil(to_ms(step) / unit) * unit)
    if max_points is None:
        return unit

    # Buckets aligned to multiples of the width: a span of k widths can touch k + 1
    # buckets, so the width is sized for max_points - 1 intervals.
    width = math.ceil(span_ms / (max_points - 1))
    return max(unit, math.ceil(width / unit) * unit)


def _bounds(tier: _Tier, marks: dict[str, int], low: int, end_ms: int) -> tuple[int, int, int]:
    """Return (tier start, hour part end, minute part end) for `_RANGE`."""
    top = end_ms + 1
    hour_end = _clamp(marks.get("rollup_1h"), low, top) if tier is _HOUR else low
    minute_end = _clamp(marks.get("rollup_1m"), hour_end, top) if tier is not _RAW else hour_end
    return low, hour_end, minute_end


def _series_ranges(
    series: list[SeriesRow],
    rows: list[tuple[int, int, float, float, float, int]],
    step_ms: int,
    tier: _Tier,
) -> list[SeriesRange]:
    points: dict[int, list[Point]] = {}
    for series_id, bucket, low, high, total, count in rows:
        point = Point(ts=from_ms(bucket), value=total / count, min=low, max=high)
        points.setdefault(series_id, []).append(point)

    resolution = from_ms(step_ms) if step_ms > 1 else 0.0
    return [
        SeriesRange(s.name, s.labels, resolution, tuple(points[s.id]), tier.name)
        for s in series
        if s.id in points
    ]


def _clamp(mark: int | None, low: int, high: int) -> int:
    if mark is None:
        return low
    return min(max(mark, low), high)


def _min_present(*values: int | None) -> int | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None
