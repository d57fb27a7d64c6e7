"""`GET /api/metrics`: the latest value of every series, optionally for some metric names and labels.

Existing scripts read this list, so its item shape (name, labels, ts, value) is
fixed. Values come from the newest raw sample of each series in the store.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from atlas_tui.api.alerts import ErrorBody
from atlas_tui.api.context import ApiContext, get_context
from atlas_tui.api.params import LABEL_FORM, parse_labels
from storage.metrics import SeriesValue, latest

__all__ = ["MetricValue", "router"]

router = APIRouter(prefix="/api", tags=["metrics"])


class MetricValue(BaseModel):
    """The newest sample of one series."""

    name: str
    """Metric name, for example `disk_usage`."""
    labels: dict[str, str]
    """Labels of the series, for example `{"mount": "/"}`; empty for host-wide metrics."""
    ts: float
    """UTC epoch seconds of the sample."""
    value: float
    """The value in the metric's unit (percent unless the name says otherwise)."""

    @classmethod
    def from_series(cls, series: SeriesValue) -> MetricValue:
        """Convert a store row to the response item."""
        return cls(name=series.name, labels=dict(series.labels), ts=series.ts, value=series.value)


@router.get(
    "/metrics",
    response_model=list[MetricValue],
    responses={422: {"model": ErrorBody, "description": "A `label` parameter is invalid."}},
)
def get_metrics(
    name: list[str] | None = Query(
        default=None, description="Return only series of this metric name; repeat it for several names."
    ),
    label: list[str] | None = Query(
        default=None,
        description=f"Return only series with this label, written {LABEL_FORM}; repeat it and all must match.",
    ),
    context: ApiContext = Depends(get_context),
) -> list[MetricValue]:
    """Return the newest sample of every series, or of the series of each metric in `name`.

    Repeated `name` values return the union of their series, each series once. An
    unknown name adds nothing, as a metric that was never written has no latest value.
    Repeated `label` values narrow the result to series that carry every one of them.
    """
    labels = parse_labels(label) or None
    with context.read_connection() as conn:
        if not name:
            rows = latest(conn, None, labels)
        else:
            rows = [row for metric in dict.fromkeys(name) for row in latest(conn, metric, labels)]
    return [MetricValue.from_series(row) for row in rows]
