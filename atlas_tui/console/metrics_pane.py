"""The Metrics pane: CPU, memory, disk and network charts over a window, and current values.

When the store has blockchain nodes or HTTP probes, a `NodesSection` between the
charts and the table shows them with a block-lag chart (class `-nodes` on the pane).

The main screen passes each snapshot to `show_snapshot`; the pane turns it into
display models (`console.presentation`) and hands those to its widgets. Changing the
window posts `RefreshRequested`, and the data loop sends a snapshot for the
new window. A snapshot for another window (one already in flight when the key was
pressed) updates the table but not the charts.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.reactive import reactive

from atlas_tui.console.nodes_panel import NodesSection
from atlas_tui.console.pane import ConsolePane
from atlas_tui.console.presentation import chart_views, table_rows
from atlas_tui.console.source import ChartId, ConsoleSnapshot
from atlas_tui.console.time_windows import WINDOWS, TimeWindow, step_window
from atlas_tui.console.widgets.chart_panel import ChartPanel
from atlas_tui.console.widgets.metrics_table import MetricsTable
from atlas_tui.console.widgets.window_bar import WindowBar

__all__ = ["CHART_TITLES", "MetricsPane"]

CHART_TITLES: tuple[tuple[ChartId, str], ...] = (
    ("cpu", "CPU"),
    ("memory", "Memory"),
    ("disk", "Disk"),
    ("network", "Network"),
)
"""Charts in grid order (left to right, top to bottom) with their initial headings."""


class MetricsPane(ConsolePane):
    """Charts in a 2x2 grid above the current-values table."""

    BINDINGS = [
        Binding("w", "next_window", "Window", tooltip="Next chart window: 5m, 1h, 24h, 7d"),
        Binding("W", "previous_window", "Previous window", show=False, tooltip="Previous chart window"),
        Binding("r", "refresh", "Refresh", tooltip="Read the store again now"),
    ]

    DEFAULT_CSS = """
    MetricsPane #charts {
        grid-size: 2 2;
        grid-gutter: 0 2;
        height: 1fr;
    }
    MetricsPane MetricsTable {
        height: 35%;
        min-height: 4;
    }
    MetricsPane NodesSection {
        height: 30%;
        min-height: 5;
    }
    MetricsPane.-nodes MetricsTable {
        height: 25%;
    }
    """

    window: reactive[TimeWindow] = reactive(WINDOWS[0], init=False)
    """The chart window; `w` and `W` step through `WINDOWS`."""

    def compose(self) -> ComposeResult:
        """Create the window bar, the chart grid and the table."""
        yield WindowBar()
        with Grid(id="charts"):
            for chart_id, title in CHART_TITLES:
                yield ChartPanel(title, id=f"chart-{chart_id}")
        yield NodesSection(id="nodes-section")
        yield MetricsTable(id="metrics-table")

    def on_mount(self) -> None:
        """Mark the initial window."""
        for bar in self.query(WindowBar):
            bar.set_active(self.window)

    def watch_window(self, window: TimeWindow) -> None:
        """Mark the new window and ask for its data."""
        for bar in self.query(WindowBar):
            bar.set_active(window)
        self.post_message(self.RefreshRequested(window.seconds))

    def action_next_window(self) -> None:
        """Select the next longer window (wrapping from 7d to 5m)."""
        self.window = step_window(self.window, 1)

    def action_previous_window(self) -> None:
        """Select the next shorter window (wrapping from 5m to 7d)."""
        self.window = step_window(self.window, -1)

    def action_refresh(self) -> None:
        """Ask for fresh data now."""
        self.post_message(self.RefreshRequested())

    def show_snapshot(self, snapshot: ConsoleSnapshot) -> None:
        """Update the table, and the charts if the snapshot is for the selected window."""
        for table in self.query(MetricsTable):
            table.apply_rows(table_rows(snapshot))
        self.set_class(bool(snapshot.nodes or snapshot.probes), "-nodes")
        for section in self.query(NodesSection):
            section.show_snapshot(snapshot)
        if snapshot.window_seconds != self.window.seconds:
            return
        for view in chart_views(snapshot, self.window):
            for panel in self.query(f"#chart-{view.chart_id}").results(ChartPanel):
                panel.show_view(view)
