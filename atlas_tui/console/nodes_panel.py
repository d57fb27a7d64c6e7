"""The nodes section of the Metrics pane: the Nodes table, a block-lag chart and the Probes table.

`MetricsPane` composes one `NodesSection` and hands it every snapshot. The section
shows `ConsoleSnapshot.nodes` and `.probes` through `console.node_presentation`, and
stays hidden while the store has neither, so a host without nodes or probes keeps
the pane as it was. The lag chart (`LagChartPanel`, id `chart-lag`) is mounted with
the first node, so a pane without nodes has no hidden chart. The pane fills it from
the snapshot's `lag` chart like its other charts.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from atlas_tui.console.node_presentation import NODE_COLUMNS, PROBE_COLUMNS, node_views, probe_views
from atlas_tui.console.presentation import ChartView
from atlas_tui.console.source import ConsoleSnapshot
from atlas_tui.console.widgets.chart_panel import ChartPanel
from atlas_tui.console.widgets.line_chart import LineChart
from atlas_tui.console.widgets.status_table import StatusTable

__all__ = ["LAG_CHART_TITLE", "LagChartPanel", "NodesSection"]

LAG_CHART_TITLE = "Block lag"
"""Heading of the lag chart until data arrives."""


class NodesSection(Horizontal):
    """Nodes table, lag chart and Probes table side by side; hidden without data."""

    DEFAULT_CSS = """
    NodesSection {
        height: 1fr;
        display: none;
    }
    NodesSection.-has-data {
        display: block;
    }
    NodesSection #nodes-table {
        width: 4fr;
    }
    NodesSection #chart-lag {
        width: 2fr;
    }
    NodesSection #probes-table {
        width: 2fr;
    }
    """

    def compose(self) -> ComposeResult:
        """Create the two tables; the lag chart is added with the first node."""
        yield StatusTable(NODE_COLUMNS, status_column="health", id="nodes-table")
        yield StatusTable(PROBE_COLUMNS, status_column="state", id="probes-table")

    @property
    def has_data(self) -> bool:
        """Whether the latest snapshot had nodes or probes, so the section is shown."""
        return self.has_class("-has-data")

    def show_snapshot(self, snapshot: ConsoleSnapshot) -> None:
        """Show the snapshot's nodes and probes; hide what has no rows."""
        self.set_class(bool(snapshot.nodes or snapshot.probes), "-has-data")
        for table in self.query("#nodes-table").results(StatusTable):
            table.display = bool(snapshot.nodes)
            table.apply_rows(node_views(snapshot.nodes, snapshot.now))
        if snapshot.nodes and not self.query("#chart-lag"):
            self.mount(LagChartPanel(LAG_CHART_TITLE, id="chart-lag"), after="#nodes-table")
        for chart in self.query("#chart-lag").results(ChartPanel):
            chart.display = bool(snapshot.nodes)
        for table in self.query("#probes-table").results(StatusTable):
            table.display = bool(snapshot.probes)
            table.apply_rows(probe_views(snapshot.probes, snapshot.now))


class LagChartPanel(ChartPanel):
    """The block-lag `ChartPanel`; a view that arrives before its chart is composed is drawn on mount.

    The section mounts this panel during the same snapshot whose views the pane hands
    out, so the first view can come before the heading and chart exist.
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        """Create an empty panel whose heading shows `title` until data arrives."""
        super().__init__(title, id=id)
        self._pending: ChartView | None = None

    def on_mount(self) -> None:
        """Draw the view that arrived while the panel was being mounted."""
        if self._pending is not None:
            view, self._pending = self._pending, None
            self.call_after_refresh(self.show_view, view)

    def show_view(self, view: ChartView) -> None:
        """Show `view`, or keep it until the chart exists."""
        if not self.query(LineChart):
            self._pending = view
            return
        super().show_view(view)
