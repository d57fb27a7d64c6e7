"""`RemoteSource`: the console's data from a daemon's HTTP API, for `atlas tui --connect URL`.

The console's data loop calls it in its worker thread, as it calls `LocalSource`.
Each call runs a few blocking requests through one `ApiClient`, and
`console.remote_views` turns the bodies into the same view models the local store
gives. Per snapshot that is `GET /api/system/status`, `GET /api/metrics` and one
`GET /api/metrics/range` per chart line (about ten requests). Each alerts read is
`GET /api/alerts` plus the status. Acknowledgements are `POST /api/alerts/ack/{id}`,
so the daemon records them as `api:<token name>`.

Link failures are state, not errors. When the daemon cannot be reached, rejects the
token or returns 429/5xx, reads return the last data they got (or empty data before
the first) and the header shows the link as `reconnecting` or `auth failed`.
The next refresh tries again, so the link recovers without a restart. Actions
(acknowledge, alert details) raise instead, so the user sees why they were not done.

NOTE: this polls at the console's refresh interval. It does not subscribe to
`WS /ws`, so a change shows at the next alerts read (at most 2 s) or refresh.
Chart windows end at this machine's clock, so a daemon whose clock runs ahead shows
its newest samples only once this clock catches up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import httpx

from atlas_tui.alerts.actions import AlertNotFoundError
from atlas_tui.alerts.errors import AlertStateError
from atlas_tui.analytics.models import AnalyticsSummary
from atlas_tui.api.metrics import MetricValue
from atlas_tui.api.metrics_range import MetricRange
from atlas_tui.api.system import SystemStatus
from atlas_tui.cli_alerts import AlertHistoryView, AlertView
from atlas_tui.console.alert_models import AlertDetail, AlertRow, AlertsSnapshot
from atlas_tui.console.analytics_models import DAU_CHART_SECONDS, EMPTY_TEXT, AnalyticsRead
from atlas_tui.console.local_alerts import alert_row
from atlas_tui.console.local_analytics import has_events
from atlas_tui.console.metric_views import build_charts, nodes_view, table_rows
from atlas_tui.console.remote_client import (
    DEFAULT_TIMEOUT,
    ApiClient,
    ApiResponseError,
    LinkError,
    is_private_link,
)
from atlas_tui.console.remote_views import (
    alert_detail,
    alert_record,
    alerts_snapshot,
    collector_statuses,
    header_info,
    parse_body,
    range_params,
    series_ranges,
    series_values,
)
from atlas_tui.console.source import ConsoleSnapshot
from storage.metrics import SeriesRange

__all__ = ["RemoteSource"]

logger = logging.getLogger(__name__)


class RemoteSource:
    """Reads a daemon's HTTP API and acknowledges alerts through it.

    Args:
        base_url: The daemon's API, `scheme://host:port` (see `remote_client.parse_target`).
        token_file: File whose first line is a bearer token with the `read` scope,
            and `ack` to acknowledge.
        ca_file: PEM file of the certificate authorities to trust for https; None
            uses httpx's default bundle.
        timeout: Seconds a request may take.
        transport: httpx transport; None opens real connections.
    """

    def __init__(
        self,
        base_url: str,
        token_file: Path,
        *,
        ca_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._token_file = token_file
        self._ca_file = ca_file
        self._timeout = timeout
        self._transport = transport
        self._client: ApiClient | None = None
        self._last_snapshot: ConsoleSnapshot | None = None
        self._last_alerts: AlertsSnapshot | None = None
        self._last_analytics: AnalyticsRead | None = None
        self._newest_ts: float | None = None

    def start(self, now: float) -> None:
        """Read the token file and prepare the connection pool; sends no request.

        Raises:
            atlas_tui.console.remote_client.TokenFileError: the token file cannot be read.
            atlas_tui.console.remote_client.RemoteError: the CA file cannot be loaded.
        """
        if self._client is not None:
            self._client.close()
        self._client = ApiClient(
            self.base_url, self._token_file, ca_file=self._ca_file, timeout=self._timeout, transport=self._transport
        )
        logger.info("remote console started target=%s token_file=%s", self.base_url, self._token_file)
        if not is_private_link(self.base_url):
            logger.warning("remote console sends its API token unencrypted target=%s; use https://", self.base_url)

    def snapshot(self, window_seconds: float, now: float) -> ConsoleSnapshot:
        """Read the header, current values and charts over the window ending at `now`.

        While the link is down, return the last snapshot with a header that shows the link.

        Raises:
            atlas_tui.console.remote_client.ApiResponseError: the daemon responded with
                an unexpected status or body.
        """
        client = self._api()
        start = now - window_seconds
        try:
            status = parse_body(SystemStatus, client.get("/api/system/status"), "GET /api/system/status")
            values = series_values(parse_body(list[MetricValue], client.get("/api/metrics"), "GET /api/metrics"))
            charts = build_charts(values, self._read_range, start, now)
            # Node kinds are in the daemon's config, which the API does not return, so rows have none.
            nodes = nodes_view(values, collector_statuses(status), {}, self._read_range, start, now)
        except LinkError:
            return self._offline_snapshot(window_seconds, now)
        if nodes.lag_chart is not None:
            charts.append(nodes.lag_chart)
        snapshot = ConsoleSnapshot(
            header=header_info(status, values, client.link, None, now),
            window_seconds=window_seconds,
            now=now,
            rows=tuple(table_rows(values)),
            charts=tuple(charts),
            nodes=nodes.nodes,
            probes=nodes.probes,
        )
        self._last_snapshot = snapshot
        self._newest_ts = max((value.ts for value in values), default=None)
        return snapshot

    def alerts(self, now: float) -> AlertsSnapshot:
        """Read the alerts, channel health and engine health; the last read while the link is down."""
        client = self._api()
        try:
            views = parse_body(list[AlertView], client.get("/api/alerts"), "GET /api/alerts")
            status = parse_body(SystemStatus, client.get("/api/system/status"), "GET /api/system/status")
        except LinkError:
            # The last read, aged to `now`, so its ages keep growing while the link is down.
            return replace(self._last_alerts, now=now) if self._last_alerts is not None else AlertsSnapshot(now=now)
        self._last_alerts = alerts_snapshot(views, status, now)
        return self._last_alerts

    def alert_detail(self, alert_id: str, now: float) -> AlertDetail | None:
        """Read one alert with its timeline and deliveries; None when the daemon has no such alert.

        Raises:
            atlas_tui.console.remote_client.LinkError: the link is down or the token was rejected.
        """
        path = f"/api/alerts/{quote(alert_id, safe='')}/history"
        try:
            body = self._api().get(path)
        except ApiResponseError as err:
            if err.status_code == 404:
                return None
            raise
        return alert_detail(parse_body(AlertHistoryView, body, f"GET {path}"), now)

    def analytics(self, range_seconds: float, now: float) -> AnalyticsRead:
        """Read the analytics summary over the range and the 30-day DAU series from `GET /api/analytics`."""
        try:
            summary = self._summary(now - range_seconds, now)
            if not has_events(summary):
                read = AnalyticsRead(range_seconds, now, None, empty_reason=EMPTY_TEXT)
            elif range_seconds >= DAU_CHART_SECONDS:
                read = AnalyticsRead(range_seconds, now, summary, daily=tuple(summary.daily))
            else:
                chart = self._summary(now - DAU_CHART_SECONDS, now)
                read = AnalyticsRead(range_seconds, now, summary, daily=tuple(chart.daily))
        except LinkError:
            if self._last_analytics is not None:
                return self._last_analytics
            return AnalyticsRead(range_seconds, now, None, empty_reason=self._api().problem)
        self._last_analytics = read
        return read

    def acknowledge(self, alert_id: str, message: str, now: float) -> AlertRow:
        """Acknowledge the alert through `POST /api/alerts/ack/{id}`; the daemon records the token's name.

        Raises:
            atlas_tui.alerts.actions.AlertNotFoundError: the daemon has no such alert.
            atlas_tui.alerts.errors.AlertStateError: the alert has no open incident.
            atlas_tui.console.remote_client.LinkError: the link is down, or the token
                lacks the `ack` scope.
        """
        try:
            body = self._api().post(f"/api/alerts/ack/{quote(alert_id, safe='')}", {"message": message})
        except ApiResponseError as err:
            if err.status_code == 404:
                raise AlertNotFoundError(alert_id) from err
            if err.status_code == 409:
                state = err.details.get("state", "not firing")
                problem = "only a firing alert with an open incident can be acknowledged"
                raise AlertStateError(alert_id, state, problem) from err
            raise
        view = parse_body(AlertView, body, "POST /api/alerts/ack")
        logger.info("alert acknowledged through the remote api alert=%s target=%s", alert_id, self.base_url)
        return alert_row(alert_record(view), now)

    def unacknowledge(self, alert_id: str, now: float) -> AlertRow:
        """Remove the acknowledgement through `POST /api/alerts/unack/{id}`.

        Raises:
            atlas_tui.alerts.actions.AlertNotFoundError: the daemon has no such alert.
            atlas_tui.alerts.errors.AlertStateError: the alert is not acknowledged.
            atlas_tui.console.remote_client.LinkError: the link is down, or the token
                lacks the `ack` scope.
        """
        try:
            body = self._api().post(f"/api/alerts/unack/{quote(alert_id, safe='')}", None)
        except ApiResponseError as err:
            if err.status_code == 404:
                raise AlertNotFoundError(alert_id) from err
            if err.status_code == 409:
                state = err.details.get("state", "not acknowledged")
                raise AlertStateError(alert_id, state, "only an acknowledged alert can lose its acknowledgement") from err
            raise
        view = parse_body(AlertView, body, "POST /api/alerts/unack")
        logger.info("alert acknowledgement removed through the remote api alert=%s target=%s", alert_id, self.base_url)
        return alert_row(alert_record(view), now)

    def close(self) -> None:
        """Close the connection pool; safe to call twice and before `start`."""
        if self._client is not None:
            self._client.close()
            logger.info("remote console stopped target=%s", self.base_url)
            self._client = None

    def _api(self) -> ApiClient:
        if self._client is None:
            raise RuntimeError("RemoteSource used before start(); call start(now) first")
        return self._client

    def _read_range(self, name: str, start: float, end: float, labels: Mapping[str, str] | None) -> list[SeriesRange]:
        body = self._api().get("/api/metrics/range", params=range_params(name, start, end, labels))
        return series_ranges(parse_body(MetricRange, body, f"GET /api/metrics/range?name={name}"))

    def _summary(self, start: float, end: float) -> AnalyticsSummary:
        body = self._api().get("/api/analytics", params=[("from", repr(start)), ("to", repr(end))])
        return parse_body(AnalyticsSummary, body, "GET /api/analytics")

    def _offline_snapshot(self, window_seconds: float, now: float) -> ConsoleSnapshot:
        """Return the last snapshot with the header showing the link, or an empty one before the first."""
        client = self._api()
        last = self._last_snapshot
        header = header_info(None, (), client.link, client.problem, now)
        if last is None:
            empty = build_charts([], _no_ranges, now - window_seconds, now)
            return ConsoleSnapshot(header=header, window_seconds=window_seconds, now=now, rows=(), charts=tuple(empty))
        age = None if self._newest_ts is None else now - self._newest_ts
        header = replace(header, host=last.header.host, daemon_state=last.header.daemon_state, newest_sample_age=age)
        # Measured at `now`, the row ages grow and the chart lines move left while the link is down.
        return replace(last, header=header, now=now)


def _no_ranges(name: str, start: float, end: float, labels: object) -> list[SeriesRange]:
    return []
