"""The console's data contract: the `ConsoleSource` protocol and the view models it returns.

A source sits between the store (or the daemon's HTTP API, for `RemoteSource`) and the console's
panes: metric snapshots, the alert view models of `console.alert_models`, the
analytics reads of `console.analytics_models`, and the acknowledgement actions. The console calls it only from its data worker thread,
never from the UI thread, so implementations may block on SQLite, psutil or the
network. Invariants:

- View models are plain frozen dataclasses with raw numbers in the unit the metric
  name implies; formatting for the screen happens in `console.formatting`.
- Timestamps are UTC epoch seconds. Every method that depends on time takes `now`.
- Nothing here imports Textual, so a source can be tested without a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from atlas_tui.console.alert_models import AlertDetail, AlertRow, AlertsSnapshot
from atlas_tui.console.analytics_models import AnalyticsRead
from atlas_tui.console.node_models import NodeRow, ProbeRow
from collectors.base import Labels

__all__ = [
    "Chart",
    "ChartId",
    "ChartSeries",
    "ConsoleSnapshot",
    "ConsoleSource",
    "DaemonState",
    "HeaderInfo",
    "LinkState",
    "MetricRow",
    "ChartPoint",
    "RemoteLink",
    "Unit",
    "row_key",
]

DaemonState = Literal["running", "stale", "embedded"]
"""`running`: a live daemon writes the store and the console only reads it.
`stale`: a daemon was found but its heartbeat is older than the stale limit.
`embedded`: no live daemon, so the console runs the collectors itself."""

Unit = Literal["percent", "bytes_per_second", "bytes", "count", "load", "seconds"]
"""The unit of a value, which decides how `console.formatting` prints it."""

ChartId = Literal["cpu", "memory", "disk", "network", "lag"]
"""The charts of the Metrics pane; `lag` is the block-lag chart of its nodes section."""

ChartPoint = tuple[float, float]
"""One chart point: `(ts, value)`."""

LinkState = Literal["connected", "reconnecting", "auth_failed"]
"""State of a remote console's link to the daemon's API. `connected`: the last request
succeeded. `reconnecting`: the last request failed to connect, timed out or got 429
or 5xx, and the next refresh tries again. `auth_failed`: the daemon rejected the token (401 or 403)."""


@dataclass(frozen=True, slots=True)
class RemoteLink:
    """The link of a console attached to a daemon over its HTTP API."""

    target: str
    """Base URL of the daemon's API, for example `https://atlas-1.example.org:8080`."""
    state: LinkState
    """State after the latest request; see `LinkState`."""
    http_status: int | None = None
    """Status of the rejected request while `state` is `auth_failed`; otherwise None."""


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    """Data of the header line: the host and the state of the store's writer."""

    host: str
    """Host name of the machine whose metrics are shown."""
    daemon_state: DaemonState
    """The writer of the store; see `DaemonState`."""
    newest_sample_age: float | None
    """Seconds between `now` and the newest stored sample; None when the store is empty."""
    problem: str | None = None
    """Reason data may be missing (embedded collection failed, the remote link is down), or None."""
    link: RemoteLink | None = None
    """The link to a remote daemon's API; None when the console reads a local store."""


@dataclass(frozen=True, slots=True)
class MetricRow:
    """The newest value of one series, one row of the current-values table."""

    name: str
    """Metric name, for example `disk_usage`."""
    labels: Labels
    """Sorted label pairs, for example `(("mount", "/"),)`."""
    value: float
    """The reading in `unit`."""
    unit: Unit
    """Unit of `value`."""
    ts: float
    """UTC epoch seconds of the reading."""

    @property
    def key(self) -> str:
        """Stable identity of the series, used as the table's row key."""
        return row_key(self.name, self.labels)


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """One line of a chart."""

    title: str
    """Legend text of the line: `total`, a mount path, `recv`."""
    unit: Unit
    """Unit of the values."""
    points: tuple[ChartPoint, ...]
    """Points ordered by timestamp. Over long windows these are rollup bucket averages."""
    latest: ChartPoint | None = None
    """The newest raw sample `(ts, value)`, the value the current-values table shows;
    the legend prints it. None when the source has no raw sample for the line, and
    then the legend prints the last point."""


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the Metrics pane with its lines."""

    chart_id: ChartId
    """Identifier of the chart."""
    title: str
    """Chart title, for example `CPU`."""
    unit: Unit
    """Unit shared by all lines."""
    series: tuple[ChartSeries, ...]
    """Lines, at most a handful so the legend fits on one line."""


@dataclass(frozen=True, slots=True)
class ConsoleSnapshot:
    """Everything the console shows after one refresh."""

    header: HeaderInfo
    """Header line data."""
    window_seconds: float
    """Width of the chart window in seconds."""
    now: float
    """UTC epoch seconds the snapshot was taken for; the right edge of the charts."""
    rows: tuple[MetricRow, ...]
    """Current values, in display order."""
    charts: tuple[Chart, ...]
    """Charts over `(now - window_seconds, now]`, in display order."""
    nodes: tuple[NodeRow, ...] = ()
    """Blockchain nodes of the Nodes table (`console.node_models`), sorted by name."""
    probes: tuple[ProbeRow, ...] = ()
    """HTTP probes of the Probes table, sorted by target."""


@runtime_checkable
class ConsoleSource(Protocol):
    """The console's data provider. Its methods block and run in the data worker thread."""

    def start(self, now: float) -> None:
        """Open connections and, for a local store without a daemon, start collecting."""
        ...

    def snapshot(self, window_seconds: float, now: float) -> ConsoleSnapshot:
        """Read the current values and the charts over the window ending at `now`."""
        ...

    def alerts(self, now: float) -> AlertsSnapshot:
        """Read the alerts, their counts, the channels' health and the rules' health.

        Called more often than `snapshot` (see `console.refresh_loop`), so it only
        runs short reads.
        """
        ...

    def alert_detail(self, alert_id: str, now: float) -> AlertDetail | None:
        """Read one alert with its timeline and deliveries; None when no alert has the id."""
        ...

    def analytics(self, range_seconds: float, now: float) -> AnalyticsRead:
        """Read the analytics summary over `(now - range_seconds, now]` and the 30-day DAU series.

        Returns a read without a summary, and with the reason, when there is nothing
        to report (no app configured, no reports code, no events).
        """
        ...

    def acknowledge(self, alert_id: str, message: str, now: float) -> AlertRow:
        """Acknowledge the alert's open incident as the current user and return the alert.

        Raises:
            atlas_tui.alerts.errors.AlertError: the alert does not exist or has no open
                incident. The message names the alert and the reason.
        """
        ...

    def unacknowledge(self, alert_id: str, now: float) -> AlertRow:
        """Remove the acknowledgement of the alert's open incident and return the alert.

        Raises:
            atlas_tui.alerts.errors.AlertError: the alert does not exist or is not
                acknowledged. The message names the alert and the reason.
        """
        ...

    def close(self) -> None:
        """Stop anything `start` began and release connections; safe to call twice."""
        ...


def row_key(name: str, labels: Labels) -> str:
    """Return the canonical text of a series (`disk_usage{mount=/}`)."""
    if not labels:
        return name
    inner = ",".join(f"{key}={value}" for key, value in labels)
    return f"{name}{{{inner}}}"
