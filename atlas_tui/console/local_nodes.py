"""Store reads for the Metrics pane's nodes section: node and probe rows and the block-lag chart.

`LocalSource.snapshot` calls `read_nodes` from the console's data thread with the
newest samples it already read. This adds one read of the collector statuses and,
when nodes exist, one `range_query` per charted node, each an autocommit read. The
rows and the chart are built by `console.metric_views.nodes_view`, which
`RemoteSource` shares.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from atlas_tui.config import Config
from atlas_tui.console.metric_views import LAG_CHART_NODES, NodesView, has_node_samples, nodes_view, store_range_reader
from storage.metrics import SeriesValue
from storage.status import read_collector_statuses

__all__ = ["LAG_CHART_NODES", "NodesView", "read_nodes"]


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
    if not has_node_samples(values):
        return NodesView((), (), None)
    statuses = read_collector_statuses(conn)
    kinds = {node.name: node.kind for node in config.collectors.nodes}
    return nodes_view(values, statuses, kinds, store_range_reader(conn, max_points), start, end)

