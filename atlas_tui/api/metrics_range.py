"""`GET /api/metrics/range`: the points of one metric's series over a time range.

The handler parses the query, then `storage.ranges.range_query` picks the table:
raw samples for short ranges, per-minute or per-hour rollups for longer ones or for
ranges whose raw samples have expired. Each series in the response names the table
it came from (`tier`) and the bucket width actually used (`resolution`).

Invariants: times are UTC epoch seconds, and one response has at most
`storage.ranges.POINT_LIMIT` points per series when a `step` is given. Every invalid
parameter gets 422 in the shared `{"error": {...}}` shape naming the parameter.
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from atlas_tui.api.alerts import ErrorBody
from atlas_tui.api.context import ApiContext, get_context
from atlas_tui.api.params import LABEL_FORM, TIME_FORM, invalid_parameter, parse_labels, parse_step, parse_time
from storage.ranges import POINT_LIMIT, SeriesRange, range_query

__all__ = ["DEFAULT_SPAN", "MetricRange", "RangePoint", "RangeSeries", "router"]

DEFAULT_SPAN = 3600.0
"""Seconds before `to` that a request without `from` covers."""

router = APIRouter(prefix="/api/metrics", tags=["metrics"])


class RangePoint(BaseModel):
    """One point: a raw sample, or the aggregate of one bucket."""

    ts: float
    """UTC epoch seconds of the sample, or the start of the bucket."""
    value: float
    """The sample, or the mean of the samples in the bucket."""
    min: float
    """Smallest sample in the bucket."""
    max: float
    """Largest sample in the bucket."""


class RangeSeries(BaseModel):
    """The points of one series."""

    labels: dict[str, str]
    """Labels of the series; empty for host-wide metrics."""
    tier: str
    """Table read: `raw`, `minute` or `hour` (each coarser tier also reads the finer ones
    for the part of the range they have not rolled up yet)."""
    resolution: float
    """Bucket width in seconds; 0 when raw samples are returned one by one."""
    points: list[RangePoint]
    """Points in time order."""

    @classmethod
    def from_range(cls, series: SeriesRange) -> RangeSeries:
        """Convert a store result to the response item."""
        points = [RangePoint(ts=p.ts, value=p.value, min=p.min, max=p.max) for p in series.points]
        return cls(labels=dict(series.labels), tier=series.tier, resolution=series.resolution, points=points)


class MetricRange(BaseModel):
    """Body of `GET /api/metrics/range`."""

    name: str
    """The metric queried."""
    start: float
    """Start of the range (the `from` parameter), UTC epoch seconds."""
    end: float
    """End of the range (the `to` parameter), inclusive."""
    step: float | None
    """The requested step in seconds; null when the store chose the resolution."""
    series: list[RangeSeries]
    """One entry per series with data in the range, sorted by labels."""


@router.get("/range", response_model=MetricRange, responses={422: {"model": ErrorBody, "description": "A parameter is invalid."}})
def get_metric_range(
    name: str | None = Query(default=None, description="Metric name, for example `cpu_usage`. Required."),
    label: list[str] | None = Query(default=None, description=f"Only series with this label, written {LABEL_FORM}; repeat for several."),
    from_: str | None = Query(default=None, alias="from", description=f"Start of the range: {TIME_FORM}. Default: one hour before `to`."),
    to: str | None = Query(default=None, description="End of the range, inclusive, in the same forms as `from`. Default: now."),
    step: str | None = Query(default=None, description="Bucket width: seconds or a duration such as 30s, 5m, 1h. Default: raw samples for short ranges, else the rollups."),
    context: ApiContext = Depends(get_context),
) -> MetricRange:
    """Return the points of every series of `name` matching `label` between `from` and `to`."""
    now = context.clock()
    metric = _required_name(name)
    labels = parse_labels(label)
    end = parse_time("to", to, default=now, now=now)
    start = parse_time("from", from_, default=end - DEFAULT_SPAN, now=now)
    width = parse_step(step)
    _check_span(start, end, from_ or "", width)

    with context.read_connection() as conn:
        ranges = range_query(conn, metric, start, end, labels or None, step=width)
    return MetricRange(
        name=metric, start=start, end=end, step=width, series=[RangeSeries.from_range(r) for r in ranges]
    )


def _required_name(name: str | None) -> str:
    if name is None or not name.strip():
        raise invalid_parameter("name", name or "", "a metric name is required, for example name=cpu_usage")
    return name.strip()


def _check_span(start: float, end: float, start_text: str, step: float | None) -> None:
    if end < start:
        raise invalid_parameter("from", start_text, f"the range starts after `to` ({end:g}); give an earlier `from`")
    if step is None:
        return
    points = math.floor((end - start) / step) + 1
    if points > POINT_LIMIT:
        least = math.ceil((end - start) / (POINT_LIMIT - 1))
        problem = f"gives {points} points per series, more than {POINT_LIMIT}; use step={least}s or more, or a shorter range"
        raise invalid_parameter("step", f"{step:g}", problem)
