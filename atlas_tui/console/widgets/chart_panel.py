"""One chart with a heading line that doubles as its legend (`CPU ● total 23.4 %`).

The Metrics pane calls `show_view` after each snapshot. The heading never wraps: it
is cut with an ellipsis when the panel is narrow, so a long mount path in the legend
cannot push the chart down.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Label

from atlas_tui.console.presentation import ChartView
from atlas_tui.console.widgets.line_chart import LINE_COLOURS, LineChart

__all__ = ["ChartPanel", "chart_heading"]


class ChartPanel(Vertical):
    """A heading label above a `LineChart`."""

    DEFAULT_CSS = """
    ChartPanel {
        width: 1fr;
        height: 1fr;
    }
    ChartPanel > .chart-heading {
        width: 1fr;
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        """Create an empty panel whose heading shows `title` until data arrives."""
        super().__init__(id=id)
        self._title = title

    def compose(self) -> ComposeResult:
        """Create the heading and the chart."""
        yield Label(Content.styled(self._title, "bold"), classes="chart-heading")
        yield LineChart()

    def show_view(self, view: ChartView) -> None:
        """Show `view` in the heading and the chart."""
        for heading in self.query(".chart-heading").results(Label):
            heading.update(chart_heading(view))
        for chart in self.query(LineChart):
            chart.show_view(view)


def chart_heading(view: ChartView) -> Content:
    """Build the heading: the bold title, then a coloured mark, legend and latest value per line."""
    parts: list[str | tuple[str, str]] = [(view.title, "bold")]
    if not view.has_data:
        parts.append("  no data")
    for index, line in enumerate(view.lines):
        colour = f"${LINE_COLOURS[index % len(LINE_COLOURS)]}"
        parts.extend(["  ", ("●", colour), f" {line.legend} {line.latest}"])
    return Content.assemble(*parts)
