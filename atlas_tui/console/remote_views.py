"""Conversions from the daemon API's response bodies to the console's view models, for `RemoteSource`.

`RemoteSource` fetches JSON with `ApiClient` in the data loop thread and hands it
here. `parse_body` validates it against the API's own response models (the classes
FastAPI serialises), and the other functions turn those into the store records and
view models `LocalSource` builds, reusing its functions where one exists
(`local_alerts.alert_row`, `firing_counts`, `alerts.fallback.all_channels_down`). A
remote console therefore shows what a local one shows for the same store, which
`tests/console/test_remote_source.py` checks on a real server. Nothing here does I/O
or reads the clock.

`range_params` requests from `GET /api/metrics/range` the buckets that
`storage.ranges.range_query` chooses for `CHART_POINTS` points: the route takes a
`step`, not a point count, so the step is computed here the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from atlas_tui.alerts.fallback import FALLBACK_AFTER, all_channels_down
from atlas_tui.api.metrics import MetricValue
from atlas_tui.api.metrics_range import MetricRange
from atlas_tui.api.system import ChannelInfo, SystemStatus
from atlas_tui.cli_alerts import AlertHistoryView, AlertView, DeliveryView, EventView
from atlas_tui.console.alert_models import (
    AlertDetail,
    AlertsSnapshot,
    ChannelStatusRow,
    DeliveryRow,
    RuleProblem,
    TimelineEntry,
)
from atlas_tui.console.local_alerts import TIMELINE_LIMIT, alert_row, firing_counts
from atlas_tui.console.metric_views import CHART_POINTS
from atlas_tui.console.remote_client import ApiResponseError
from atlas_tui.console.source import HeaderInfo, RemoteLink
from collectors.base import CollectorStatus, make_labels
from storage.alerts import AlertRecord
from storage.metrics import Point, SeriesRange, SeriesValue
from storage.outbox import ChannelHealthRecord

__all__ = [
    "alert_detail",
    "alert_record",
    "alerts_snapshot",
    "chart_step_ms",
    "collector_statuses",
    "header_info",
    "parse_body",
    "range_params",
    "series_ranges",
    "series_values",
]

_T = TypeVar("_T")

_TIER_WIDTHS_MS = (1, 60_000, 3_600_000)
"""Bucket widths of the store's tiers in milliseconds: raw samples (1 ms), per-minute
and per-hour rollups."""


def parse_body(model: type[_T], body: object, request: str) -> _T:
    """Validate a decoded JSON body against `model` (a pydantic model or a `list[...]` of one).

    Raises:
        ApiResponseError: the body does not have the model's shape, which happens when
            the daemon runs an ATLAS version with another API.
    """
    try:
        return TypeAdapter(model).validate_python(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        message = (f"{request} returned an unexpected body ({where}: {first['msg']}); "
                   "the daemon may run another ATLAS version than this console")
        raise ApiResponseError(message, 200) from err


def series_values(items: Iterable[MetricValue]) -> list[SeriesValue]:
    """Convert `GET /api/metrics` items to the newest values `storage.metrics.latest` returns."""
    return [SeriesValue(item.name, make_labels(item.labels), item.ts, item.value) for item in items]


def series_ranges(body: MetricRange) -> list[SeriesRange]:
    """Convert a `GET /api/metrics/range` body to the series `storage.ranges.range_query` returns."""
    return [
        SeriesRange(
            body.name,
            make_labels(series.labels),
            series.resolution,
            tuple(Point(point.ts, point.value, point.min, point.max) for point in series.points),
            series.tier,
        )
        for series in body.series
    ]


def chart_step_ms(start: float, end: float, max_points: int = CHART_POINTS) -> int:
    """Return the bucket width in ms that `range_query` uses for `max_points` points over `[start, end]`.

    It takes the coarsest tier whose buckets fit `max_points` times into the range,
    then sizes buckets for `max_points - 1` intervals from the tier-aligned start,
    rounded up to whole tier buckets.

    NOTE: the route picks its tier from the step, as the coarsest tier that divides
    it. That agrees with `max_points` for the console's windows (5m, 1h, 24h, 7d) but
    not for a range whose step rounds to whole hours while minute rollups are
    preferred (spans of about 9.8 to 10 days).
    """
    start_ms, end_ms = round(start * 1000), round(end * 1000)
    fits = (end_ms - start_ms) / max_points
    unit = max(width for width in _TIER_WIDTHS_MS if width == 1 or width <= fits)
    low = start_ms // unit * unit
    width = math.ceil((end_ms - low) / (max_points - 1))
    return max(unit, math.ceil(width / unit) * unit)


def range_params(
    name: str, start: float, end: float, labels: Mapping[str, str] | None, max_points: int = CHART_POINTS
) -> list[tuple[str, str]]:
    """Return the query of `GET /api/metrics/range` for one chart line.

    Times are sent as `repr` of the float, so the daemon parses back the exact value.
    """
    params = [("name", name), ("from", repr(start)), ("to", repr(end))]
    params += [("label", f"{key}:{value}") for key, value in sorted((labels or {}).items())]
    params.append(("step", f"{chart_step_ms(start, end, max_points)}ms"))
    return params


def collector_statuses(status: SystemStatus) -> list[CollectorStatus]:
    """Convert the collectors of `GET /api/system/status` for the node and probe rows."""
    return [
        CollectorStatus(
            name=info.name,
            interval=info.interval,
            last_run=info.last_run,
            last_duration_ms=info.last_duration_ms,
            last_error=info.last_error,
            failures=info.failures,
            unavailable=dict(info.unavailable),
        )
        for info in status.collectors
    ]


def header_info(
    status: SystemStatus | None, values: Sequence[SeriesValue], link: RemoteLink, problem: str | None, now: float
) -> HeaderInfo:
    """Build the header of a remote console; without a status yet, the host is the URL's host name."""
    newest = max((value.ts for value in values), default=None)
    host = status.host if status is not None else urlsplit(link.target).hostname or link.target
    running = status is not None and status.daemon.state == "running"
    return HeaderInfo(
        host=host,
        daemon_state="running" if running else "stale",
        newest_sample_age=None if newest is None else now - newest,
        problem=problem,
        link=link,
    )


def alert_record(view: AlertView) -> AlertRecord:
    """Rebuild the store record an `AlertView` was made from, so `alert_row` applies unchanged."""
    return AlertRecord(
        alert_id=view.alert_id,
        fingerprint=view.fingerprint,
        rule_id=view.rule_id,
        rule_name=view.rule_name,
        severity=view.severity,
        labels=dict(view.labels),
        state=view.state,
        value=view.value,
        message=view.message,
        active_since=view.active_since,
        fired_at=view.fired_at,
        resolved_at=view.resolved_at,
        incident_id=view.incident_id,
        ack_by=view.ack_by,
        ack_at=view.ack_at,
        ack_message=view.ack_message,
        silenced=view.silenced,
        last_eval=view.last_eval,
        updated_at=view.updated_at if view.updated_at is not None else 0.0,
    )


def alerts_snapshot(views: Sequence[AlertView], status: SystemStatus, now: float) -> AlertsSnapshot:
    """Build the Alerts pane's data from `GET /api/alerts` and `GET /api/system/status`."""
    records = [alert_record(view) for view in views]
    alerting = status.alerting
    return AlertsSnapshot(
        now=now,
        rows=tuple(alert_row(record, now) for record in records),
        counts=firing_counts(records),
        channels=tuple(_channel_row(info) for info in status.channels),
        channels_down_for=_channels_down_for(status.channels, now),
        rule_problems=tuple(RuleProblem(problem.rule_id, problem.message or "error") for problem in alerting.rule_problems),
        missed_evaluations=alerting.missed_evaluations,
        last_evaluation=alerting.last_evaluation,
    )


def alert_detail(history: AlertHistoryView, now: float) -> AlertDetail:
    """Build the detail screen's data from `GET /api/alerts/{id}/history`.

    NOTE: the API returns neither the rule's condition nor its annotations, so both
    stay empty, and deliveries have no `next_attempt_at`.
    """
    view = history.alert
    return AlertDetail(
        row=alert_row(alert_record(view), now),
        now=now,
        fingerprint=view.fingerprint,
        fired_at=view.fired_at,
        resolved_at=view.resolved_at,
        ack_at=view.ack_at,
        ack_message=view.ack_message,
        timeline=tuple(_timeline_entry(event) for event in history.events[-TIMELINE_LIMIT:]),
        deliveries=tuple(_delivery_row(delivery) for delivery in history.deliveries),
    )


def _channel_row(info: ChannelInfo) -> ChannelStatusRow:
    return ChannelStatusRow(
        channel=info.name,
        state=info.state,
        last_success_at=info.last_success_at,
        last_error_at=info.last_error_at,
        last_error_class=info.last_error_class,
        last_error=info.last_error,
        queue_depth=info.queue_depth,
        next_retry_at=info.next_retry_at,
        dead_letters=info.dead_letters,
    )


def _channels_down_for(channels: Sequence[ChannelInfo], now: float) -> float | None:
    """Return how long every configured channel has been down, with the local console's rule."""
    configured = [info.name for info in channels if info.configured]
    health = [_health_record(info) for info in channels]
    if not all_channels_down(health, now, channels=configured, after=FALLBACK_AFTER):
        return None
    starts = [record.failing_since for record in health if record.channel in configured]
    latest_start = max((start for start in starts if start is not None), default=now)
    return now - latest_start


def _health_record(info: ChannelInfo) -> ChannelHealthRecord:
    return ChannelHealthRecord(
        channel=info.name, state=info.state, last_success_at=info.last_success_at, last_error_at=info.last_error_at,
        last_error_class=info.last_error_class, last_error=info.last_error, http_status=None, response_body=None,
        next_retry_at=info.next_retry_at, consecutive_failures=info.consecutive_failures,
        failing_since=info.failing_since, queue_depth=info.queue_depth, held=0, dead_letters=info.dead_letters,
    )  # fmt: skip


def _timeline_entry(event: EventView) -> TimelineEntry:
    return TimelineEntry(
        at=event.at,
        kind=event.kind,
        from_state=event.from_state,
        to_state=event.to_state,
        value=event.value,
        actor=event.actor,
        message=event.message,
    )


def _delivery_row(delivery: DeliveryView) -> DeliveryRow:
    # The API reports a skipped notice as status `skipped`; the store keeps it as delivered.
    skipped = delivery.status == "skipped"
    return DeliveryRow(
        channel=delivery.channel,
        kind=delivery.kind,
        status="delivered" if skipped else delivery.status,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        last_error_class=delivery.last_error_class,
        last_error=delivery.last_error,
        skipped=skipped,
    )
