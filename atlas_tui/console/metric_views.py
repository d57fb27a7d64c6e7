"""The Metrics pane's table rows, charts and nodes section, built from newest values and a range reader.

Both sources build their snapshot here, so the local console and one attached to a
remote daemon show the same rows and lines for the same store. `LocalSource` passes
the newest samples from `storage.metrics.latest` and a `RangeReader` over its store
connection (`store_range_reader`). `RemoteSource` passes the same values decoded
from `GET /api/metrics` and a reader over `GET /api/metrics/range`. Invariants:

- A reader returns what `storage.ranges.range_query` returns with
  `max_points=CHART_POINTS` for the same arguments: series sorted by labels, points
  in time order.
- Nothing here reads the clock or does I/O except through the reader it is given.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from atlas_tui.console.node_models import NodeRow, ProbeRow, node_rows, probe_rows
from atlas_tui.console.source import Chart, ChartPoint, ChartSeries, MetricRow, Unit
from collectors.base import CollectorStatus, Labels
from storage.metrics import SeriesRange, SeriesValue, range_query

__all__ = [
    "CHART_POINTS",
    "LAG_CHART_NODES",
    "TABLE_METRICS",
    "NodesView",
    "RangeReader",
    "build_charts",
    "has_node_samples",
    "nodes_view",
    "store_range_reader",
    "table_rows",
]

RangeReader = Callable[[str, float, float, Mapping[str, str] | None], list[SeriesRange]]
"""Returns the series of a metric over `[start, end]`, called as `(name, start, end, labels)`;
`labels` None or empty matches every series of the name."""

TABLE_METRICS: tuple[tuple[str, Unit], ...] = (
    ("cpu_usage", "percent"),
    ("memory_usage", "percent"),
    ("swap_usage", "percent"),
    ("load_1m", "load"),
    ("process_count", "count"),
    ("disk_usage", "percent"),
    ("net_recv_bytes_per_second", "bytes_per_second"),
    ("net_sent_bytes_per_second", "bytes_per_second"),
)
"""Metrics of the current-values table with their units, in display order."""

CHART_POINTS = 240
"""Points per line asked from the store; more than a 160-column chart can show."""

DISK_CHART_MOUNTS = 3
"""Mounts drawn in the disk chart: the fullest ones, so the legend fits one line."""

LOOPBACK_INTERFACES = frozenset({"lo"})
"""Interfaces left out of the network chart's totals; traffic to self is not load."""

LAG_CHART_NODES = 4
"""Nodes drawn in the lag chart, the most lagging first, so the legend fits one line."""

_ROW_RANK = {name: rank for rank, (name, _unit) in enumerate(TABLE_METRICS)}
_UNITS = dict(TABLE_METRICS)
# Received and sent rates of one interface sit next to each other in the table.
_ROW_GROUP = {**_ROW_RANK, "net_sent_bytes_per_second": _ROW_RANK["net_recv_bytes_per_second"]}


@dataclass(frozen=True, slots=True)
class NodesView:
    """The rows and the lag chart of the nodes section for one snapshot."""

    nodes: tuple[NodeRow, ...]
    """One row per node, sorted by name."""
    probes: tuple[ProbeRow, ...]
    """One row per probe, sorted by target."""
    lag_chart: Chart | None
    """Block lag over the window, one line per node; None without nodes."""


def store_range_reader(conn: sqlite3.Connection, max_points: int = CHART_POINTS) -> RangeReader:
    """Return a reader that runs `range_query` on `conn` with `max_points` points per line."""

    def read(name: str, start: float, end: float, labels: Mapping[str, str] | None) -> list[SeriesRange]:
        return range_query(conn, name, start, end, labels=labels, max_points=max_points)

    return read


def table_rows(values: Iterable[SeriesValue]) -> list[MetricRow]:
    """Build the current-values table from the newest sample of every series, in display order."""
    rows = [
        MetricRow(value.name, value.labels, value.value, _UNITS[value.name], value.ts)
        for value in values
        if value.name in _UNITS and not (value.name == "cpu_usage" and value.labels)
    ]
    rows.sort(key=lambda row: (_ROW_GROUP[row.name], row.labels, _ROW_RANK[row.name]))
    return rows


def build_charts(values: list[SeriesValue], read_range: RangeReader, start: float, end: float) -> list[Chart]:
    """Build the CPU, memory, disk and network charts over `[start, end]`.

    Args:
        values: The newest sample of every series; the legends print them.
        read_range: Reads the points of each line.
        start: Left edge of the chart window, UTC epoch seconds.
        end: Right edge of the chart window.
    """
    newest = {(value.name, value.labels): value for value in values}
    return [
        Chart("cpu", "CPU", "percent", _lines(read_range, newest, [("cpu_usage", (), "total")], start, end)),
        Chart(
            "memory",
            "Memory",
            "percent",
            _lines(read_range, newest, [("memory_usage", (), "used"), ("swap_usage", (), "swap")], start, end),
        ),
        Chart("disk", "Disk", "percent", _lines(read_range, newest, _fullest_mounts(values), start, end)),
        Chart("network", "Network", "bytes_per_second", _network_lines(read_range, values, start, end)),
    ]


def has_node_samples(values: Iterable[SeriesValue]) -> bool:
    """Return whether any node or probe reported, so the nodes section has rows."""
    return any(value.name in ("node_health", "probe_up") for value in values)


def nodes_view(
    values: Sequence[SeriesValue],
    statuses: Iterable[CollectorStatus],
    kinds: Mapping[str, str],
    read_range: RangeReader,
    start: float,
    end: float,
) -> NodesView:
    """Build the node and probe rows from `values` and read the lag chart over `[start, end]`.

    Args:
        values: The newest sample of every series.
        statuses: Collector statuses; `node:<name>` and `probe:<name>` give the detail text.
        kinds: Node name mapped to its kind, from the config.
        read_range: Reads the lag line of each charted node.
        start: Left edge of the chart window, UTC epoch seconds.
        end: Right edge of the chart window.
    """
    if not has_node_samples(values):
        return NodesView((), (), None)
    statuses = list(statuses)
    nodes = node_rows(values, statuses, kinds)
    probes = probe_rows(values, statuses)
    chart = _lag_chart(read_range, nodes, start, end) if nodes else None
    return NodesView(nodes, probes, chart)


def _lines(
    read_range: RangeReader,
    newest: dict[tuple[str, Labels], SeriesValue],
    requested: Iterable[tuple[str, Labels, str]],
    start: float,
    end: float,
) -> tuple[ChartSeries, ...]:
    lines = []
    for name, labels, title in requested:
        ranges = read_range(name, start, end, dict(labels))
        exact = [series for series in ranges if series.labels == labels]
        points = tuple((point.ts, point.value) for series in exact for point in series.points)
        sample = newest.get((name, labels))
        latest = None if sample is None else (sample.ts, sample.value)
        lines.append(ChartSeries(title, _UNITS.get(name, "count"), points, latest))
    return tuple(lines)


def _network_lines(
    read_range: RangeReader, values: list[SeriesValue], start: float, end: float
) -> tuple[ChartSeries, ...]:
    lines = []
    for name, title in (("net_recv_bytes_per_second", "recv"), ("net_sent_bytes_per_second", "sent")):
        totals: dict[float, float] = {}
        for series in read_range(name, start, end, None):
            if _is_loopback(series.labels):
                continue
            for point in series.points:
                totals[point.ts] = totals.get(point.ts, 0.0) + point.value
        latest = _newest_total(value for value in values if value.name == name and not _is_loopback(value.labels))
        lines.append(ChartSeries(title, "bytes_per_second", tuple(sorted(totals.items())), latest))
    return tuple(lines)


def _lag_chart(read_range: RangeReader, nodes: Sequence[NodeRow], start: float, end: float) -> Chart:
    charted = sorted(nodes, key=lambda node: -(node.lag or 0.0))[:LAG_CHART_NODES]
    lines = []
    for node in sorted(charted, key=lambda node: node.name):
        ranges = read_range("node_block_lag", start, end, {"node": node.name})
        points = tuple((point.ts, point.value) for series in ranges for point in series.points)
        # The legend shows the Nodes table's lag, not the last bucket average of a long window.
        latest = None if node.lag is None else (node.ts, node.lag)
        lines.append(ChartSeries(node.name, "count", points, latest))
    return Chart("lag", "Block lag", "count", tuple(lines))


def _is_loopback(labels: Labels) -> bool:
    return dict(labels).get("interface") in LOOPBACK_INTERFACES


def _newest_total(values: Iterable[SeriesValue]) -> ChartPoint | None:
    """Add the newest raw sample of every interface, as the table lists them, stamped with the newest ts."""
    samples = list(values)
    if not samples:
        return None
    return max(sample.ts for sample in samples), sum(sample.value for sample in samples)


def _fullest_mounts(values: Iterable[SeriesValue]) -> list[tuple[str, Labels, str]]:
    disks = sorted(
        (value for value in values if value.name == "disk_usage"), key=lambda value: -value.value
    )[:DISK_CHART_MOUNTS]
    return [("disk_usage", disk.labels, dict(disk.labels).get("mount", "?")) for disk in disks]
