"""Store reads for the Metrics pane's nodes section: node and probe rows and the block-lag chart.

`LocalSource.snapshot` calls `read_nodes` from the console's data thread with the
newest samples it already read. This adds one read of the collector statuses and,
when nodes exist, one `range_query` per charted node, each an autocommit read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from atlas_tui.config import Config
from atlas_tui.console.node_models import NodeRow, ProbeRow, node_rows, probe_rows
from atlas_tui.console.source import Chart, ChartSeries
from storage.metrics import SeriesValue, range_query
from storage.status import read_collector_statuses

__all__ = ["LAG_CHART_NODES", "NodesView", "read_nodes"]

LAG_CHART_NODES = 4
"""Nodes drawn in the lag chart, the most lagging first, so the legend fits one line."""


@dataclass(frozen=True, slots=True)
class NodesView:
    """The rows and the lag chart of the nodes section for one snapshot."""

    nodes: tuple[NodeRow, ...]
    """One row per node, sorted by name."""
    probes: tuple[ProbeRow, ...]
    """One row per probe, sorted by target."""
    lag_chart: Chart | None
    """Block lag over the window, one line per node; None without nodes."""


def read_nodes(
    conn: sqlite3.Connection,
    config: Config,
    values: Sequence[SeriesValue],
    start: float,
    end: float,
    max_points: int,
) -> NodesView:
    """Build the node and probe rows from `values` and read the lag chart over `(start, end]`.

    Args:
        conn: The store connection.
        config: The console's config, for each node's kind.
        values: The newest sample of every series.
        start: Left edge of the chart window, UTC epoch seconds.
        end: Right edge of the chart window.
        max_points: Points asked per line.
    """
    if not any(value.name in ("node_health", "probe_up") for value in values):
        return NodesView((), (), None)
    statuses = read_collector_statuses(conn)
    kinds = {node.name: node.kind for node in config.collectors.nodes}
    nodes = node_rows(values, statuses, kinds)
    probes = probe_rows(values, statuses)
    chart = _lag_chart(conn, nodes, start, end, max_points) if nodes else None
    return NodesView(nodes, probes, chart)


def _lag_chart(
    conn: sqlite3.Connection, nodes: Sequence[NodeRow], start: float, end: float, max_points: int
) -> Chart:
    charted = sorted(nodes, key=lambda node: -(node.lag or 0.0))[:LAG_CHART_NODES]
    lines = []
    for node in sorted(charted, key=lambda node: node.name):
        ranges = range_query(conn, "node_block_lag", start, end, labels={"node": node.name}, max_points=max_points)
        points = tuple((point.ts, point.value) for series in ranges for point in series.points)
        # The legend shows the Nodes table's lag, not the last bucket average of a long window.
        latest = None if node.lag is None else (node.ts, node.lag)
        lines.append(ChartSeries(node.name, "count", points, latest))
    return Chart("lag", "Block lag", "count", tuple(lines))
