"""The nodes section of the Metrics pane: rows from the store, their display, and the widgets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from atlas_tui.config import Config
from atlas_tui.console.local_nodes import read_nodes
from atlas_tui.console.local_source import LocalSource
from atlas_tui.console.node_models import NodeRow, ProbeRow, node_rows, probe_rows
from atlas_tui.console.node_presentation import STALE_AFTER, node_views, probe_views
from atlas_tui.console.nodes_panel import NodesSection
from atlas_tui.console.source import Chart, ChartSeries, ConsoleSnapshot
from atlas_tui.console.widgets.line_chart import LineChart
from atlas_tui.console.widgets.metrics_table import MetricsTable
from atlas_tui.console.widgets.status_table import StatusTable
from collectors.base import CollectorStatus, Sample, make_labels
from collectors.health import HEALTH_CODES
from storage.db import open_store
from storage.metrics import SeriesValue, latest, write_samples
from storage.status import write_collector_statuses
from tests.console.fake_source import NOW, FakeSource
from tests.console.pilot_helpers import fake_app, wait_for_snapshots

CONFIG = Config.model_validate(
    {"collectors": {"nodes": [{"name": "eth-1", "kind": "ethereum", "url": "http://127.0.0.1:8545"}]}}
)


def series(name: str, value: float, ts: float = NOW - 2, **labels: str) -> SeriesValue:
    """Return one stored newest value."""
    return SeriesValue(name, make_labels(labels), ts, value)


def node_values(node: str = "eth-1", ts: float = NOW - 2, health: str = "ok") -> list[SeriesValue]:
    """Return one poll's newest values of a node."""
    return [
        series("node_health", HEALTH_CODES[health], ts, node=node),  # type: ignore[index]
        series("node_block_height", 1_234_567, ts, node=node),
        series("node_block_lag", 3, ts, node=node),
        series("node_head_age_seconds", 14, ts, node=node),
        series("node_peer_count", 25, ts, node=node),
        series("node_rpc_latency_ms", 4.25, ts, node=node),
    ]


def test_node_row_from_latest_poll() -> None:
    """A node row carries every value of its latest poll and its kind from the config."""
    [row] = node_rows(node_values(), [], {"eth-1": "ethereum"})

    assert row == NodeRow("eth-1", "ethereum", "ok", NOW - 2, 1_234_567, 3, 14, 25, 4.25)


def test_node_row_drops_older_values() -> None:
    """Values older than the latest node_health (a node now down) are not shown as current."""
    values = [*node_values(ts=NOW - 60), series("node_health", HEALTH_CODES["down"], NOW - 2, node="eth-1")]

    [row] = node_rows(values, [], {})

    assert row.health == "down"
    assert row.height is None
    assert row.kind is None


def test_node_detail_from_status() -> None:
    """The `rpc` reason of the node's collector status becomes the row's detail."""
    status = CollectorStatus("node:eth-1", 15.0, unavailable={"rpc": "starting: Loading block index…"})

    [row] = node_rows(node_values(health="starting"), [status], {})

    assert row.detail == "starting: Loading block index…"


def test_probe_rows() -> None:
    """A probe row has its state, code, latency and certificate days."""
    values = [
        series("probe_up", 1, target="api"),
        series("probe_status_code", 200, target="api"),
        series("probe_latency_ms", 12.5, target="api"),
        series("tls_cert_days_left", 9.6, target="api"),
        series("cpu_usage", 40),
    ]

    assert probe_rows(values, []) == (ProbeRow("api", True, NOW - 2, 200, 12.5, 9.6),)


@pytest.mark.parametrize(
    ("health", "status"),
    [("ok", "ok"), ("syncing", "warning"), ("lagging", "warning"), ("starting", "warning"),
     ("stalled", "critical"), ("down", "critical"), ("misconfigured", "critical")],
)
def test_node_view_status(health: str, status: str) -> None:
    """Each health state maps to a row colour status."""
    row = NodeRow("eth-1", "ethereum", health, NOW - 2)  # type: ignore[arg-type]

    assert node_views([row], NOW)[0].status == status


def test_node_view_cells() -> None:
    """Numbers are grouped, ages short, latency in ms; missing values show a dash."""
    row = NodeRow("eth-1", "ethereum", "ok", NOW - 2, 1_234_567, 3, 74, None, 4.25)

    cells = node_views([row], NOW)[0].cells

    assert cells["height"] == "1,234,567"
    assert cells["head_age"] == "1m 14s"
    assert cells["peers"] == "—"
    assert cells["latency"] == "4.2 ms"


def test_stale_node_view() -> None:
    """A row whose latest poll is older than STALE_AFTER is marked stale."""
    view = node_views([NodeRow("eth-1", None, "ok", NOW - STALE_AFTER - 1)], NOW)[0]

    assert view.status == "stale"
    assert view.cells["health"] == "ok (stale)"


@pytest.mark.parametrize(
    ("up", "days", "status"),
    [(True, 90.0, "ok"), (True, 10.0, "warning"), (True, -1.0, "critical"), (False, 90.0, "critical"), (True, None, "ok")],
)
def test_probe_view_status(up: bool, days: float | None, status: str) -> None:
    """A probe is critical when down or expired and a warning under 14 days."""
    view = probe_views([ProbeRow("api", up, NOW - 2, 200, 10.0, days)], NOW)[0]

    assert view.status == status


def test_read_nodes_from_store(tmp_path: Path) -> None:
    """LocalSource's read builds node and probe rows and a lag chart from a real store."""
    conn = open_store(tmp_path)
    samples = [Sample.of("node_block_lag", lag, NOW - 30 + 10 * step, node="eth-1") for step, lag in enumerate((5, 4, 2))]
    samples += [Sample.of(value.name, value.value, value.ts, **dict(value.labels)) for value in node_values()]
    samples += [Sample.of("probe_up", 0, NOW - 2, target="api")]
    write_samples(conn, samples)
    write_collector_statuses(conn, [CollectorStatus("probe:api", 30.0, unavailable={"request": "timed out after 5s"})])
    view = read_nodes(conn, CONFIG, latest(conn), NOW - 300, NOW, 240)
    conn.close()

    assert [row.name for row in view.nodes] == ["eth-1"]
    assert view.probes[0].detail == "timed out after 5s"
    assert view.lag_chart is not None
    assert [point[1] for point in view.lag_chart.series[0].points] == [5, 4, 2, 3]


def test_local_source_snapshot_has_nodes(tmp_path: Path) -> None:
    """A LocalSource snapshot carries the nodes, the probes and the lag chart."""
    conn = open_store(tmp_path)
    write_samples(conn, [Sample.of(v.name, v.value, v.ts, **dict(v.labels)) for v in node_values()])
    conn.close()
    source = LocalSource(CONFIG, tmp_path, embedded=False)
    source.start(NOW)
    try:
        snapshot = source.snapshot(300.0, NOW)
    finally:
        source.close()

    assert [row.name for row in snapshot.nodes] == ["eth-1"]
    assert snapshot.nodes[0].kind == "ethereum"
    assert [chart.chart_id for chart in snapshot.charts][-1] == "lag"


class NodesSource(FakeSource):
    """The fake host plus two nodes, one probe and a lag chart."""

    def snapshot(self, window_seconds: float, now: float) -> ConsoleSnapshot:
        """Return the fake host snapshot with nodes and probes added."""
        base = super().snapshot(window_seconds, now)
        nodes = (
            NodeRow("eth-1", "ethereum", "ok", now - 2, 1_234_567, 0, 12, 25, 4.2),
            NodeRow("btc-1", "bitcoin", "starting", now - 2, detail="starting: Loading block index…"),
        )
        probes = (ProbeRow("api", False, now - 2, 500, 30.0, None),)
        lag = Chart("lag", "Block lag", "count", (ChartSeries("eth-1", "count", ((now - 60, 2.0), (now - 2, 0.0))),))
        return dataclasses.replace(base, nodes=nodes, probes=probes, charts=(*base.charts, lag))


async def test_section_hidden_without_nodes() -> None:
    """Without nodes or probes the section stays hidden and the metrics table keeps focus."""
    app = fake_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for_snapshots(pilot)
        section = app.screen.query_one(NodesSection)

        assert section.has_data is False
        assert section.display is False
        assert isinstance(app.focused, MetricsTable)


async def test_section_shows_nodes_and_probes() -> None:
    """With nodes and probes the section shows both tables and the lag chart."""
    app = fake_app(NodesSource())
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for_snapshots(pilot)
        await pilot.pause()
        section = app.screen.query_one(NodesSection)
        nodes = section.query_one("#nodes-table", StatusTable)
        probes = section.query_one("#probes-table", StatusTable)

        assert section.has_data is True
        assert nodes.get_cell("eth-1", "height").plain == "1,234,567"
        assert nodes.get_cell("btc-1", "health").plain == "starting"
        assert nodes.get_cell("btc-1", "detail").plain == "starting: Loading block index…"
        assert probes.get_cell("api", "state").plain == "down"


async def test_lag_chart_drawn_from_first_snapshot() -> None:
    """The lag chart mounted with the first node draws that first snapshot's lag."""
    app = fake_app(NodesSource())
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for_snapshots(pilot)
        await pilot.pause()
        await pilot.pause()
        chart = app.screen.query_one("#chart-lag LineChart", LineChart)

        assert chart.view is not None
        assert chart.view.lines[0].legend == "eth-1"


async def test_health_colour_from_theme() -> None:
    """The health cell takes its colour from the theme's success or warning variable."""
    app = fake_app(NodesSource())
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for_snapshots(pilot)
        await pilot.pause()
        nodes = app.screen.query_one("#nodes-table", StatusTable)
        ok_colour = nodes.get_cell("eth-1", "health").style.color  # type: ignore[union-attr]
        warning_colour = nodes.get_cell("btc-1", "health").style.color  # type: ignore[union-attr]

        assert ok_colour is not None and ok_colour.triplet.hex.upper() == app.theme_variables["success"].upper()
        assert warning_colour is not None and warning_colour.triplet.hex.upper() == app.theme_variables["warning"].upper()
