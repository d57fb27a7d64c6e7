"""Display models for the Metrics pane: table cells and chart axes built from a snapshot.

The pane calls these pure functions on the UI thread after the data worker delivers a
`ConsoleSnapshot`. Widgets then print the strings and plot the numbers as given.
Every label that came from the host (mount paths, interface names) passes through
`printable` and is truncated here, so no widget has to guard against long or hostile
text.
"""

from __future__ import annotations

from dataclasses import dataclass

from atlas_tui.console.formatting import (
    format_age,
    format_axis_value,
    format_value,
    printable,
    truncate_cells,
)
from atlas_tui.console.source import Chart, ChartId, ChartPoint, ChartSeries, ConsoleSnapshot, MetricRow, Unit
from atlas_tui.console.time_windows import TimeWindow

__all__ = [
    "INSTANCE_WIDTH",
    "LEGEND_WIDTH",
    "TABLE_COLUMNS",
    "VALUE_WIDTH",
    "ChartView",
    "LineView",
    "TableRowView",
    "chart_views",
    "metric_label",
    "table_rows",
]

INSTANCE_WIDTH = 32
"""Cells kept of a mount path or interface name in the table; 80 columns fit the rest."""

VALUE_WIDTH = 12
"""Cells of the value column. Values are right-aligned in it, so decimals line up and
the column keeps its width when a value gets longer or shorter."""

LEGEND_WIDTH = 16
"""Cells kept of a line's legend text in a chart heading."""

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("metric", "Metric"),
    ("instance", "Instance"),
    ("value", "Value"),
    ("updated", "Updated"),
)
"""Column keys and headings of the current-values table, in order."""

_METRIC_LABELS = {
    "cpu_usage": "CPU",
    "memory_usage": "Memory",
    "swap_usage": "Swap",
    "load_1m": "Load 1m",
    "load_5m": "Load 5m",
    "load_15m": "Load 15m",
    "process_count": "Processes",
    "disk_usage": "Disk used",
    "net_recv_bytes_per_second": "Net recv",
    "net_sent_bytes_per_second": "Net sent",
    "disk_read_bytes_per_second": "Disk read",
    "disk_write_bytes_per_second": "Disk write",
}


@dataclass(frozen=True, slots=True)
class TableRowView:
    """One row of the current-values table, ready to print."""

    key: str
    """Row key: the series' canonical text, stable across refreshes."""
    metric: str
    """Metric column text."""
    instance: str
    """Label values (mount, interface), truncated to `INSTANCE_WIDTH` cells."""
    value: str
    """Formatted value with its unit, padded on the left to `VALUE_WIDTH` cells."""
    updated: str
    """Age of the reading (`3s ago`)."""

    def cell(self, column_key: str) -> str:
        """Return the text of the column with key `column_key`."""
        return str(getattr(self, column_key))


@dataclass(frozen=True, slots=True)
class LineView:
    """One plotted line: x is seconds relative to the snapshot's `now` (so 0 or less)."""

    legend: str
    """Truncated legend text."""
    latest: str
    """Formatted newest raw sample (the table's value), or `—` without data in the window."""
    xs: tuple[float, ...]
    """Seconds before `now`, as negative numbers."""
    ys: tuple[float, ...]
    """Values in the chart's unit."""


@dataclass(frozen=True, slots=True)
class ChartView:
    """Everything one chart widget needs to draw itself."""

    chart_id: ChartId
    """Identifier of the chart."""
    title: str
    """Chart title."""
    lines: tuple[LineView, ...]
    """Lines in legend order."""
    x_range: tuple[float, float]
    """Left and right edge of the x axis in seconds relative to `now`."""
    x_ticks: tuple[tuple[float, str], ...]
    """Labelled x ticks: position and text (`-2m`, `now`)."""
    y_range: tuple[float, float]
    """Bottom and top of the y axis."""
    y_ticks: tuple[tuple[float, str], ...]
    """Labelled y ticks: position and text."""

    @property
    def has_data(self) -> bool:
        """Whether any line has at least one point."""
        return any(line.xs for line in self.lines)


def metric_label(name: str) -> str:
    """Return the table's name for a metric; unknown names are shown as they are."""
    return _METRIC_LABELS.get(name, printable(name))


def table_rows(snapshot: ConsoleSnapshot) -> list[TableRowView]:
    """Build the table rows of a snapshot, in the snapshot's order."""
    return [_table_row(row, snapshot.now) for row in snapshot.rows]


def chart_views(snapshot: ConsoleSnapshot, window: TimeWindow) -> list[ChartView]:
    """Build one chart view per chart of the snapshot, with axes for `window`."""
    return [_chart_view(chart, snapshot.now, window) for chart in snapshot.charts]


def _table_row(row: MetricRow, now: float) -> TableRowView:
    instance = ", ".join(value for _key, value in row.labels)
    return TableRowView(
        key=row.key,
        metric=metric_label(row.name),
        instance=truncate_cells(printable(instance), INSTANCE_WIDTH, keep="middle"),
        value=format_value(row.value, row.unit).rjust(VALUE_WIDTH),
        updated=format_age(now - row.ts),
    )


def _chart_view(chart: Chart, now: float, window: TimeWindow) -> ChartView:
    start = now - window.seconds
    lines = []
    for series in chart.series:
        visible = [(ts, value) for ts, value in series.points if start <= ts <= now]
        lines.append(
            LineView(
                legend=truncate_cells(printable(series.title), LEGEND_WIDTH, keep="middle"),
                latest=_latest_text(series, visible, start),
                xs=tuple(ts - now for ts, _value in visible),
                ys=tuple(value for _ts, value in visible),
            )
        )
    top = _y_top(chart.unit, [value for line in lines for value in line.ys])
    return ChartView(
        chart_id=chart.chart_id,
        title=chart.title,
        lines=tuple(lines),
        x_range=(-window.seconds, 0.0),
        x_ticks=tuple((-offset, _tick_label(offset)) for offset in window.tick_offsets),
        y_range=(0.0, top),
        y_ticks=tuple((value, format_axis_value(value, chart.unit)) for value in (0.0, top / 2, top)),
    )


def _latest_text(series: ChartSeries, visible: list[ChartPoint], start: float) -> str:
    """Format the legend value: the newest raw sample, so it matches the table.

    The chart's own points may be minute or hour averages, whose last one can differ
    a lot from the current reading, so it is only the fallback.
    """
    if series.latest is not None and series.latest[0] >= start:
        return format_value(series.latest[1], series.unit)
    if visible:
        return format_value(visible[-1][1], series.unit)
    return format_age(None)


def _y_top(unit: Unit, values: list[float]) -> float:
    """Pick the top of the y axis: 100 for percent, else a round number above the maximum.

    Byte rates are rounded in binary units (1, 2 or 5 times a power of ten KiB, MiB, …)
    so the axis labels match the table's units.
    """
    if unit == "percent":
        return 100.0
    highest = max(values, default=0.0)
    if highest <= 0:
        return 1.0
    base = 1024.0 if unit in ("bytes", "bytes_per_second") else 1000.0
    scale = 1.0
    while highest / scale >= base:
        scale *= base
    step = 1.0
    while step * 10 <= highest / scale:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor * scale >= highest:
            return step * factor * scale
    return step * 10 * scale  # pragma: no cover - factor 10 always reaches the maximum


def _tick_label(offset: float) -> str:
    if offset == 0:
        return "now"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if offset % size == 0:
            return f"-{offset / size:.0f}{unit}"
    return f"-{offset:.0f}s"
