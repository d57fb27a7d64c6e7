"""The Analytics pane: usage, a DAU chart, release health, top screens, transactions and ingest.

The main screen passes each analytics read to `show_analytics`; the pane turns it
into display models (`console.analytics_presentation`) for its widgets. `t` changes
the report range and posts `RangeChanged`, and the data loop sends a read for the
new range. A read for another range (one already in flight when the key was
pressed) is not shown. While there is nothing to report, a notice with `EMPTY_TEXT`
takes the place of the sections (CSS class `-empty` on the pane). Unlike the
section lines, which are cut with `…`, the notice wraps, so the setup hint stays
readable at 80 columns.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.events import Resize
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Label, Static

from atlas_tui.console.analytics_models import ANALYTICS_RANGES, AnalyticsRange, AnalyticsRead, step_range
from atlas_tui.console.analytics_presentation import (
    dau_chart_view,
    ingest_section,
    release_section,
    screen_section,
    transaction_section,
    usage_line,
)
from atlas_tui.console.pane import ConsolePane
from atlas_tui.console.widgets.dau_chart import DauChart
from atlas_tui.console.widgets.range_bar import RangeBar
from atlas_tui.console.widgets.status_lines import LINE_STYLES, StatusLines

__all__ = ["CHART_MIN_HEIGHT", "LOADING_TEXT", "AnalyticsPane"]

CHART_MIN_HEIGHT = 7
"""Rows of the DAU panel (heading and chart) at 80x24; larger panes give it a third of their height."""

LOADING_TEXT = "reading analytics…"
"""Notice text before the first read arrives."""


class AnalyticsPane(ConsolePane):
    """Range bar, headline, DAU chart and four sections in two columns; or the empty notice."""

    BINDINGS = [
        Binding("t", "next_range", "Range", tooltip="Next report range: 24h, 7d, 30d"),
        Binding("r", "refresh", "Refresh", show=False, tooltip="Read the store again now"),
    ]

    DEFAULT_CSS = """
    AnalyticsPane #analytics-empty {
        display: none;
        padding: 1 1;
        color: $text-muted;
    }
    AnalyticsPane.-empty #analytics-empty {
        display: block;
    }
    AnalyticsPane.-empty #analytics-body {
        display: none;
    }
    AnalyticsPane #analytics-usage {
        width: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    AnalyticsPane #dau-panel {
        height: 7;  /* CHART_MIN_HEIGHT; on_resize grows it on taller panes */
    }
    AnalyticsPane #dau-heading {
        width: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    AnalyticsPane #analytics-body {
        scrollbar-size-vertical: 1;
    }
    AnalyticsPane .analytics-row {
        height: auto;
    }
    AnalyticsPane StatusLines {
        padding: 0 1 0 0;
    }
    """

    report_range: reactive[AnalyticsRange] = reactive(ANALYTICS_RANGES[0], init=False)
    """Range the sections cover, ending now; `t` cycles through `ANALYTICS_RANGES`."""

    class RangeChanged(Message):
        """Asks the data loop for an analytics read over a new range."""

        def __init__(self, range_seconds: float) -> None:
            super().__init__()
            self.range_seconds = range_seconds
            """Width of the new range in seconds."""

    def __init__(self, *, id: str | None = None) -> None:
        """Create the pane; it shows `LOADING_TEXT` until the first read."""
        super().__init__(id=id)
        self._read: AnalyticsRead | None = None

    def compose(self) -> ComposeResult:
        """Create the range bar, the empty notice and the scrolling body of sections."""
        yield RangeBar()
        yield Static(LOADING_TEXT, id="analytics-empty")
        with VerticalScroll(id="analytics-body"):
            yield Label("", id="analytics-usage")
            with Vertical(id="dau-panel"):
                yield Label(Content.styled("Daily active devices", "bold"), id="dau-heading")
                yield DauChart(id="dau-chart")
            with Horizontal(classes="analytics-row"):
                yield StatusLines("Crash-free · app start", id="analytics-releases")
                yield StatusLines("Ingest", id="analytics-ingest")
            with Horizontal(classes="analytics-row"):
                yield StatusLines("Top screens", id="analytics-screens")
                yield StatusLines("Transactions by asset", id="analytics-transactions")

    def on_mount(self) -> None:
        """Mark the initial range and show the loading notice."""
        for bar in self.query(RangeBar):
            bar.set_active(self.report_range)
        self.add_class("-empty")

    def on_resize(self, event: Resize) -> None:
        """Give the chart a third of a tall pane, and `CHART_MIN_HEIGHT` rows at least."""
        height = max(CHART_MIN_HEIGHT, event.size.height // 3)
        for panel in self.query("#dau-panel"):
            panel.styles.height = height

    def watch_report_range(self, report_range: AnalyticsRange) -> None:
        """Mark the new range and ask for its data."""
        for bar in self.query(RangeBar):
            bar.set_active(report_range)
        self.post_message(self.RangeChanged(report_range.seconds))

    def action_next_range(self) -> None:
        """Show the next range: 24h, 7d, 30d, then 24h again."""
        self.report_range = step_range(self.report_range, 1)

    def action_refresh(self) -> None:
        """Ask for fresh data now."""
        self.post_message(self.RefreshRequested())

    @property
    def read(self) -> AnalyticsRead | None:
        """The read shown last; None before the first read for the current range."""
        return self._read

    def show_analytics(self, read: AnalyticsRead) -> None:
        """Show a new analytics read, unless it covers another range than the selected one."""
        if read.range_seconds != self.report_range.seconds:
            return
        self._read = read
        summary = read.summary
        self.set_class(summary is None, "-empty")
        if summary is None:
            for notice in self.query("#analytics-empty").results(Static):
                notice.update(read.empty_reason or LOADING_TEXT)
            return
        usage = usage_line(summary)
        for label in self.query("#analytics-usage").results(Label):
            label.update(Content.styled(usage.text, LINE_STYLES[usage.status]))
        chart = dau_chart_view(read)
        for heading in self.query("#dau-heading").results(Label):
            heading.update(Content.styled(chart.title, "bold"))
        for plot in self.query(DauChart):
            plot.show_view(chart)
        sections = {
            "analytics-releases": release_section(summary),
            "analytics-ingest": ingest_section(summary, read.now),
            "analytics-screens": screen_section(summary),
            "analytics-transactions": transaction_section(summary),
        }
        for block in self.query(StatusLines):
            if block.id in sections:
                block.show_section(sections[block.id])
