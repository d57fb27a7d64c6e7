"""Tests of the display models built from console snapshots."""

from __future__ import annotations

from rich.cells import cell_len

from atlas_tui.console.presentation import INSTANCE_WIDTH, VALUE_WIDTH, chart_views, table_rows
from atlas_tui.console.source import Chart, ChartSeries, ConsoleSnapshot, HeaderInfo, MetricRow
from atlas_tui.console.time_windows import WINDOWS, step_window

NOW = 1_000_000.0


def _snapshot(rows: tuple[MetricRow, ...] = (), charts: tuple[Chart, ...] = ()) -> ConsoleSnapshot:
    header = HeaderInfo(host="h", daemon_state="running", newest_sample_age=1.0)
    return ConsoleSnapshot(header=header, window_seconds=300.0, now=NOW, rows=rows, charts=charts)


def test_row_cells_formatted() -> None:
    """A disk row shows its label, mount, percent and age."""
    row = MetricRow("disk_usage", (("mount", "/home"),), 51.26, "percent", NOW - 4)
    (view,) = table_rows(_snapshot((row,)))
    assert view.key == "disk_usage{mount=/home}"
    assert view.metric == "Disk used"
    assert view.instance == "/home"
    assert view.value == "51.3 %".rjust(VALUE_WIDTH)
    assert view.updated == "4s ago"


def test_row_long_mount_truncated() -> None:
    """A 200-character mount path is cut in the middle to the instance width."""
    mount = "/" + "m" * 190 + "/tail"
    row = MetricRow("disk_usage", (("mount", mount),), 1.0, "percent", NOW)
    (view,) = table_rows(_snapshot((row,)))
    assert cell_len(view.instance) == INSTANCE_WIDTH
    assert view.instance.endswith("/tail")


def test_row_unknown_metric_name_kept() -> None:
    """A metric without a display name shows its own name."""
    row = MetricRow("node_peer_count", (), 3.0, "count", NOW)
    (view,) = table_rows(_snapshot((row,)))
    assert view.metric == "node_peer_count"


def test_chart_drops_points_outside_window() -> None:
    """Points older than the window are not plotted and x is relative to now."""
    series = ChartSeries("total", "percent", ((NOW - 400, 1.0), (NOW - 60, 2.0), (NOW, 3.0)))
    (view,) = chart_views(_snapshot(charts=(Chart("cpu", "CPU", "percent", (series,)),)), WINDOWS[0])
    assert view.lines[0].xs == (-60.0, 0.0)
    assert view.lines[0].latest == "3.0 %"
    assert view.x_range == (-300.0, 0.0)
    assert view.y_range == (0.0, 100.0)


def test_chart_ticks_follow_window() -> None:
    """The 24 h window labels its ticks in hours and ends at now."""
    day = step_window(WINDOWS[0], 2)
    (view,) = chart_views(_snapshot(charts=(Chart("cpu", "CPU", "percent", ()),)), day)
    assert [label for _, label in view.x_ticks] == ["-18h", "-12h", "-6h", "now"]


def test_chart_rate_axis_rounds_up() -> None:
    """A 1.5 MiB/s peak gets a 2 MiB/s axis with binary labels."""
    series = ChartSeries("recv", "bytes_per_second", ((NOW, 1.5 * 1024**2),))
    chart = Chart("network", "Network", "bytes_per_second", (series,))
    (view,) = chart_views(_snapshot(charts=(chart,)), WINDOWS[0])
    assert view.y_range == (0.0, 2.0 * 1024**2)
    assert [label for _, label in view.y_ticks] == ["0", "1M", "2M"]


def test_chart_without_data() -> None:
    """An empty series has no data and a dash as its latest value."""
    chart = Chart("memory", "Memory", "percent", (ChartSeries("swap", "percent", ()),))
    (view,) = chart_views(_snapshot(charts=(chart,)), WINDOWS[0])
    assert not view.has_data
    assert view.lines[0].latest == "—"


def test_window_cycle_wraps() -> None:
    """Stepping forward from 7d gives 5m and backward from 5m gives 7d."""
    assert step_window(WINDOWS[-1], 1) == WINDOWS[0]
    assert step_window(WINDOWS[0], -1) == WINDOWS[-1]
