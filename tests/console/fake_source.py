"""A deterministic in-memory `ConsoleSource` for console tests.

It implements the console's own interface with fixed, seeded data, so Pilot tests
and snapshots do not depend on this machine's load. Each `snapshot` call advances a
counter, which changes the values so tests can see a refresh land. Alerts are a
fixed list that `acknowledge` and `unacknowledge` change in memory, with the same
refusals as the store (`AlertNotFoundError`, `AlertStateError`). Analytics reads
return `analytics_summary` (None gives the empty state) and record each range.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace

from atlas_tui.alerts.actions import AlertNotFoundError
from atlas_tui.analytics.models import AnalyticsSummary
from atlas_tui.alerts.errors import AlertStateError
from atlas_tui.console.alert_models import (
    AlertCounts,
    AlertDetail,
    AlertRow,
    AlertsSnapshot,
    ChannelStatusRow,
    DeliveryRow,
    RuleProblem,
    TimelineEntry,
)
from atlas_tui.console.analytics_models import EMPTY_TEXT, AnalyticsRead
from collectors.base import make_labels
from atlas_tui.console.source import (
    Chart,
    ChartSeries,
    ConsoleSnapshot,
    HeaderInfo,
    MetricRow,
)

NOW = 1_750_000_000.0
"""Fixed UTC epoch seconds used as `now` by tests."""

DEFAULT_MOUNTS = ("/", "/home", "/var/lib/docker")
DEFAULT_INTERFACES = ("eth0", "wlan0")
ACTOR = "tester"
"""User the fake records for acknowledgements."""


def default_alerts() -> list[AlertRow]:
    """Return five alerts in listing order: firing, acked, silenced, pending, resolved."""
    return [
        AlertRow("alert_1", "high_cpu", "CPU above 90 %", "critical", "firing", make_labels(host="web-1"),
                 97.5, 300.0, open_incident=True),
        AlertRow("alert_2", "disk_full", "Disk almost full", "error", "firing",
                 make_labels(mount="/var/lib/docker"), 93.0, 1200.0, acked_by="alice", open_incident=True),
        AlertRow("alert_5", "load", "Load present", "info", "firing", (), 1.2, 90.0, silenced=True,
                 open_incident=True),
        AlertRow("alert_3", "mem_high", "Memory high", "warning", "pending", (), 81.0, 60.0),
        AlertRow("alert_4", "swap", "Swap in use", "warning", "resolved", (), 2.0, 600.0),
    ]


def default_channels() -> list[ChannelStatusRow]:
    """Return a working email channel and a failing Slack channel with two queued notices."""
    return [
        ChannelStatusRow("email", "ok", last_success_at=NOW - 120),
        ChannelStatusRow("slack", "failing", last_error_at=NOW - 10, last_error_class="read_timeout",
                         last_error="no answer within 10 s", queue_depth=2, next_retry_at=NOW + 40),
    ]


class FakeSource:
    """Fixed host data; values depend only on the call count and the timestamps."""

    def __init__(
        self,
        *,
        host: str = "atlas-test",
        mounts: tuple[str, ...] = DEFAULT_MOUNTS,
        interfaces: tuple[str, ...] = DEFAULT_INTERFACES,
        fail_with: Exception | None = None,
        alerts: list[AlertRow] | None = None,
        channels: list[ChannelStatusRow] | None = None,
    ) -> None:
        self.host = host
        self.mounts = mounts
        self.interfaces = interfaces
        self.fail_with = fail_with
        self.calls = 0
        self.windows: list[float] = []
        self.started = threading.Event()
        self.closed = threading.Event()
        self.alert_rows = default_alerts() if alerts is None else alerts
        self.channels = default_channels() if channels is None else channels
        self.channels_down_for: float | None = None
        self.rule_problems = [RuleProblem("typo", "unknown metric cpu_usge")]
        self.acks: list[tuple[str, str]] = []
        self.unacks: list[str] = []
        self.detail_reads: list[str] = []
        self.analytics_summary: AnalyticsSummary | None = None
        self.analytics_ranges: list[float] = []

    def start(self, now: float) -> None:
        """Record the start."""
        self.started.set()

    def snapshot(self, window_seconds: float, now: float) -> ConsoleSnapshot:
        """Return values that change with each call."""
        if self.fail_with is not None:
            raise self.fail_with
        self.calls += 1
        self.windows.append(window_seconds)
        return ConsoleSnapshot(
            header=HeaderInfo(host=self.host, daemon_state="running", newest_sample_age=2.0),
            window_seconds=window_seconds,
            now=now,
            rows=tuple(self._rows(now)),
            charts=tuple(self._charts(window_seconds, now)),
        )

    def close(self) -> None:
        """Record the close."""
        self.closed.set()

    def alerts(self, now: float) -> AlertsSnapshot:
        """Return the alert list, counts of the firing ones, channels and rule problems."""
        firing = [row.severity for row in self.alert_rows if row.state == "firing"]
        counts = AlertCounts(*(firing.count(s) for s in ("critical", "error", "warning", "info")))
        return AlertsSnapshot(
            now=now,
            rows=tuple(self.alert_rows),
            counts=counts,
            channels=tuple(self.channels),
            channels_down_for=self.channels_down_for,
            rule_problems=tuple(self.rule_problems),
            missed_evaluations=2,
            last_evaluation=now - 12,
        )

    def alert_detail(self, alert_id: str, now: float) -> AlertDetail | None:
        """Return a detail with two events and one delivery per channel, or None."""
        self.detail_reads.append(alert_id)
        row = self._find(alert_id)
        if row is None:
            return None
        return AlertDetail(
            row=row,
            now=now,
            fingerprint="0123456789abcdef",
            condition="cpu_usage > 90",
            annotations=(("runbook_url", "https://runbooks.example.org/cpu"), ("summary", "CPU is busy")),
            fired_at=now - row.age_seconds,
            timeline=(
                TimelineEntry(now - row.age_seconds, "firing", "inactive", "firing", row.value),
                TimelineEntry(now - 30, "acknowledged", actor="alice", message="looking"),
            ),
            deliveries=(
                DeliveryRow("email", "firing", "delivered", 1, now - 290, delivered_at=now - 289),
                DeliveryRow("slack", "firing", "pending", 3, now - 290, next_attempt_at=now + 40,
                            last_error_class="read_timeout", last_error="no answer within 10 s"),
            ),
        )

    def analytics(self, range_seconds: float, now: float) -> AnalyticsRead:
        """Return `analytics_summary` with its own daily rows, or the empty state when it is None."""
        self.analytics_ranges.append(range_seconds)
        summary = self.analytics_summary
        if summary is None:
            return AnalyticsRead(range_seconds, now, None, empty_reason=EMPTY_TEXT)
        return AnalyticsRead(range_seconds, now, summary, daily=tuple(summary.daily))

    def acknowledge(self, alert_id: str, message: str, now: float) -> AlertRow:
        """Mark the alert acknowledged by `ACTOR`; refuse one without an open incident."""
        row = self._require(alert_id)
        if not row.open_incident:
            raise AlertStateError(alert_id, row.state, "only a firing alert can be acknowledged")
        self.acks.append((alert_id, message))
        return self._replace(replace(row, acked_by=ACTOR))

    def unacknowledge(self, alert_id: str, now: float) -> AlertRow:
        """Remove the acknowledgement; refuse an alert that has none."""
        row = self._require(alert_id)
        if row.acked_by is None:
            raise AlertStateError(alert_id, row.state, "it is not acknowledged")
        self.unacks.append(alert_id)
        return self._replace(replace(row, acked_by=None))

    def _find(self, alert_id: str) -> AlertRow | None:
        return next((row for row in self.alert_rows if row.alert_id == alert_id), None)

    def _require(self, alert_id: str) -> AlertRow:
        row = self._find(alert_id)
        if row is None:
            raise AlertNotFoundError(alert_id)
        return row

    def _replace(self, new: AlertRow) -> AlertRow:
        self.alert_rows = [new if row.alert_id == new.alert_id else row for row in self.alert_rows]
        return new

    def _rows(self, now: float) -> list[MetricRow]:
        bump = float(self.calls)
        rows = [
            MetricRow("cpu_usage", (), 20.0 + bump, "percent", now - 2),
            MetricRow("memory_usage", (), 41.5, "percent", now - 2),
            MetricRow("swap_usage", (), 3.0, "percent", now - 2),
            MetricRow("load_1m", (), 0.75, "load", now - 2),
        ]
        for index, mount in enumerate(self.mounts):
            rows.append(MetricRow("disk_usage", make_labels(mount=mount), 30.0 + 20 * index, "percent", now - 2))
        for index, interface in enumerate(self.interfaces):
            labels = make_labels(interface=interface)
            rows.append(MetricRow("net_recv_bytes_per_second", labels, 1_500_000.0 / (index + 1), "bytes_per_second", now - 2))
            rows.append(MetricRow("net_sent_bytes_per_second", labels, 48_000.0 / (index + 1), "bytes_per_second", now - 2))
        return rows

    def _charts(self, window: float, now: float) -> list[Chart]:
        count = 60
        times = [now - window + window * (i + 1) / count for i in range(count)]

        def wave(base: float, amplitude: float, period: float) -> tuple[tuple[float, float], ...]:
            return tuple((ts, base + amplitude * math.sin(i / period)) for i, ts in enumerate(times))

        return [
            Chart("cpu", "CPU", "percent", (ChartSeries("total", "percent", wave(35, 25, 5)),)),
            Chart(
                "memory",
                "Memory",
                "percent",
                (ChartSeries("used", "percent", wave(45, 5, 20)), ChartSeries("swap", "percent", wave(3, 1, 9))),
            ),
            Chart(
                "disk",
                "Disk",
                "percent",
                tuple(ChartSeries(m, "percent", wave(30 + 20 * i, 1, 30)) for i, m in enumerate(self.mounts[:3])),
            ),
            Chart(
                "network",
                "Network",
                "bytes_per_second",
                (
                    ChartSeries("recv", "bytes_per_second", wave(1_200_000, 800_000, 4)),
                    ChartSeries("sent", "bytes_per_second", wave(60_000, 40_000, 6)),
                ),
            ),
        ]
