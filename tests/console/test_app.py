"""Pilot tests of the console: keys, help, quitting, table refresh, sizes and long names."""

from __future__ import annotations

import random
import time

from rich.cells import cell_len
from textual.widgets import Label

from atlas_tui.console.help_screen import HelpScreen
from atlas_tui.console.main_screen import MainScreen
from atlas_tui.console.metrics_pane import MetricsPane
from atlas_tui.console.presentation import INSTANCE_WIDTH
from atlas_tui.console.widgets.chart_panel import ChartPanel
from atlas_tui.console.widgets.line_chart import LineChart
from atlas_tui.console.widgets.metrics_table import MetricsTable
from atlas_tui.console.widgets.too_small_notice import TooSmallNotice
from tests.console.fake_source import FakeSource
from tests.console.pilot_helpers import fake_app, wait_for_snapshots, wait_until


def _cpu_chart(app) -> LineChart:  # type: ignore[no-untyped-def]
    return app.main_screen.query_one("#chart-cpu", ChartPanel).query_one(LineChart)


class TestKeys:
    """Key bindings of the app and the Metrics pane."""

    async def test_window_next_and_previous(self) -> None:
        """`w` moves the charts to the 1 h window and `W` back to 5 min."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for_snapshots(pilot)
            pane = app.main_screen.query_one(MetricsPane)

            await pilot.press("w")
            assert pane.window.label == "1h"
            assert await wait_until(pilot, lambda: _cpu_chart(app).view.x_range == (-3600.0, 0.0))
            assert 3600.0 in source.windows

            await pilot.press("W")
            assert pane.window.label == "5m"
            assert await wait_until(pilot, lambda: _cpu_chart(app).view.x_range == (-300.0, 0.0))

    async def test_window_cycles_through_all(self) -> None:
        """Four presses of `w` visit 1h, 24h, 7d and wrap to 5m."""
        app = fake_app()
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for_snapshots(pilot)
            pane = app.main_screen.query_one(MetricsPane)
            seen = []
            for _ in range(4):
                await pilot.press("w")
                seen.append(pane.window.label)
            assert seen == ["1h", "24h", "7d", "5m"]

    async def test_help_opens_and_closes(self) -> None:
        """`?` opens the help overlay listing the keys and escape closes it."""
        app = fake_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            keys = [key for key, _ in app.help_entries()]
            assert {"q", "?", "1", "w", "W", "r"} <= set(keys)

            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)

    async def test_q_quits_and_closes_source(self) -> None:
        """`q` exits with status 0 and the data loop closes the source."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for_snapshots(pilot)
            await pilot.press("q")
            assert await wait_until(pilot, lambda: not app.is_running)
        assert app.return_code == 0
        assert source.closed.wait(2.0)

    async def test_ctrl_c_quits(self) -> None:
        """Ctrl+C quits instead of only showing a hint."""
        app = fake_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("ctrl+c")
            assert await wait_until(pilot, lambda: not app.is_running)
        assert app.return_code == 0

    async def test_pane_key_focuses_table(self) -> None:
        """`1` shows the Metrics pane and puts the keyboard on its table."""
        app = fake_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("1")
            assert app.main_screen.active_pane == "metrics"
            assert isinstance(app.focused, MetricsTable)


class TestTable:
    """The current-values table."""

    async def test_refresh_updates_rows_in_place(self) -> None:
        """`r` changes the CPU value while the row keys, their order and the cursor stay."""
        app = fake_app()
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for_snapshots(pilot)
            table = app.main_screen.query_one(MetricsTable)
            keys_before = [key.value for key in table.rows]
            assert str(table.get_cell("cpu_usage", "value")).strip() == "21.0 %"
            await pilot.press("down", "down")

            await pilot.press("r")
            assert await wait_for_snapshots(pilot, 2)

            assert [key.value for key in table.rows] == keys_before
            assert str(table.get_cell("cpu_usage", "value")).strip() == "22.0 %"
            assert table.cursor_row == 2

    async def test_vanished_series_removed(self) -> None:
        """An interface that disappears loses its rows; the others keep their keys."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for_snapshots(pilot)
            table = app.main_screen.query_one(MetricsTable)
            source.interfaces = ("eth0",)
            await pilot.press("r")
            assert await wait_for_snapshots(pilot, 2)
            keys = [key.value for key in table.rows]
            assert "net_recv_bytes_per_second{interface=wlan0}" not in keys
            assert "net_recv_bytes_per_second{interface=eth0}" in keys


class TestSizes:
    """Small terminals, resizes and long names (80x24 is the minimum)."""

    async def test_too_small_notice_and_recovery(self) -> None:
        """Below 80x24 only the notice shows; at 80x24 and 200x60 the panes return."""
        app = fake_app()
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for_snapshots(pilot)
            screen = app.main_screen
            notice = screen.query_one(TooSmallNotice)
            for width, height in [(60, 15), (20, 5), (1, 1)]:
                await pilot.resize_terminal(width, height)
                await pilot.pause()
                assert screen.too_small
                assert notice.display
                assert f"have {width}x{height}" in str(notice.render())
                assert not screen.query_one("#body").display

            for width, height in [(80, 24), (200, 60)]:
                await pilot.resize_terminal(width, height)
                await pilot.pause()
                assert not screen.too_small
                assert not notice.display
                assert screen.query_one(MetricsTable).region.height > 0

            assert isinstance(app.focused, MetricsTable)

    async def test_resize_under_help(self) -> None:
        """Resizing to 1x1 with the help open raises nothing; closing it shows the notice."""
        app = fake_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            for width, height in [(40, 10), (1, 1), (60, 15)]:
                await pilot.resize_terminal(width, height)
                await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
            assert app.main_screen.too_small
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            assert not app.main_screen.too_small

    async def test_rapid_resizes_keep_refreshing(self) -> None:
        """20 random resizes raise nothing and refresh still works afterwards."""
        app = fake_app()
        sizes = random.Random(3)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for_snapshots(pilot)
            for _ in range(20):
                await pilot.resize_terminal(sizes.randint(1, 220), sizes.randint(1, 70))
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            await pilot.press("r")
            assert await wait_for_snapshots(pilot, 2)
            assert app.is_running

    async def test_long_names_truncated_at_80x24(self) -> None:
        """A 200-character mount, a CJK mount and a 100-character host fit 80 columns."""
        long_mount = "/" + "x" * 190 + "/end"
        source = FakeSource(host="h" * 100, mounts=(long_mount, "/データ/ボリューム💾"))
        app = fake_app(source)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for_snapshots(pilot)
            screen = app.main_screen
            table = screen.query_one(MetricsTable)

            instance = str(table.get_cell(f"disk_usage{{mount={long_mount}}}", "instance"))
            assert cell_len(instance) == INSTANCE_WIDTH
            assert "…" in instance
            assert "データ" in str(table.get_cell("disk_usage{mount=/データ/ボリューム💾}", "instance"))
            assert table.virtual_size.width <= table.size.width

            for label in screen.query("#header Label").results(Label):
                assert label.region.height == 1
                assert label.region.right <= 80
            for heading in screen.query(".chart-heading").results(Label):
                assert heading.region.height == 1


class TestLocalStore:
    """The app over a real store with embedded collection."""

    async def test_live_values_from_this_machine(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        """Without a daemon the console collects and shows this machine's CPU and disk."""
        from atlas_tui.config import Config
        from atlas_tui.console.app import create_app

        config = Config.model_validate(
            {"metrics_refresh_interval": 0.2, "collectors": {"system": {"interval": 0.5}}}
        )
        app = create_app(config, tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.main_screen.query_one(MetricsTable)
            assert await wait_until(pilot, lambda: "cpu_usage" in table.rows, timeout=10.0)
            assert str(table.get_cell("cpu_usage", "value")).endswith("%")
            assert any(key.value.startswith("disk_usage{") for key in table.rows)
            header_state = app.main_screen.query_one("#header-state", Label)
            assert "embedded" in str(header_state.render())
        # The data loop thread closes the source (and stops collection) after the app exits.
        deadline = time.monotonic() + 3.0
        while app.source.embedded and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.02)
        assert not app.source.embedded  # type: ignore[attr-defined]
