"""Pilot tests of the Alerts pane at 80x24 over the fake source: keys, prompt, details, filter, header."""

from __future__ import annotations

import random
from dataclasses import replace

from rich.cells import cell_len
from textual.widgets import Input, Label

from atlas_tui.console.ack_prompt import AckPrompt
from atlas_tui.console.alert_detail_screen import AlertDetailScreen
from atlas_tui.console.alert_models import AlertRow
from atlas_tui.console.app import AtlasApp
from atlas_tui.console.main_screen import MainScreen
from atlas_tui.console.widgets.alerts_table import AlertsTable
from atlas_tui.console.widgets.channels_banner import ChannelsDownBanner
from atlas_tui.console.widgets.rule_status import RuleStatus
from collectors.base import make_labels
from tests.console.fake_source import ACTOR, FakeSource, default_alerts
from tests.console.pilot_helpers import fake_app, wait_until

SIZE = (80, 24)


async def _open_alerts(pilot, app: AtlasApp) -> AlertsTable:  # type: ignore[no-untyped-def]
    """Wait for the first alerts read, press `2` and return the focused alerts table."""
    assert await wait_until(pilot, lambda: app.main_screen.alerts_shown > 0)
    await pilot.press("2")
    return app.main_screen.query_one(AlertsTable)


def _keys(table: AlertsTable) -> list[str]:
    return [str(key.value) for key in table.rows]


def _state(table: AlertsTable, alert_id: str) -> str:
    return table.get_cell(alert_id, "state").plain


class TestKeys:
    """Switching to the pane and its keys."""

    async def test_two_shows_alerts(self) -> None:
        """`2` shows the Alerts pane with the keyboard on its table, firing alerts first."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            table = await _open_alerts(pilot, app)
            assert app.main_screen.active_pane == "alerts"
            assert app.focused is table
            assert _keys(table) == ["alert_1", "alert_2", "alert_5", "alert_3", "alert_4"]

    async def test_ack_with_message(self) -> None:
        """`a`, a message and Enter acknowledge the selected alert and its row shows the ack."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            table = await _open_alerts(pilot, app)
            await pilot.press("a")
            assert isinstance(app.screen, AckPrompt)
            await pilot.press("o", "n", "space", "i", "t", "enter")
            assert await wait_until(pilot, lambda: _state(table, "alert_1") == f"acked by {ACTOR}")
            assert source.acks == [("alert_1", "on it")]
            assert isinstance(app.screen, MainScreen)
            assert table.cursor_row == 0

    async def test_ack_escape_cancels(self) -> None:
        """Escape closes the prompt without acknowledging anything."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            await _open_alerts(pilot, app)
            await pilot.press("a", "x", "escape")
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
            assert source.acks == []

    async def test_ack_prompt_keeps_digits(self) -> None:
        """Digits and `q` typed into the prompt go into the message, not to pane switching or quit."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            await _open_alerts(pilot, app)
            await pilot.press("a", "1", "q", "2")
            assert isinstance(app.screen, AckPrompt)
            assert app.screen.query_one(Input).value == "1q2"
            assert app.main_screen.active_pane == "alerts"

    async def test_ack_resolved_refused(self) -> None:
        """`a` on a resolved alert opens no prompt and acknowledges nothing."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            table = await _open_alerts(pilot, app)
            table.move_cursor(row=table.get_row_index("alert_4"))
            await pilot.press("a")
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
            assert source.acks == []

    async def test_store_refusal_notified(self) -> None:
        """A refusal from the source (the alert resolved meanwhile) is shown as an error notification."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            await _open_alerts(pilot, app)
            await pilot.press("a")
            source.alert_rows[0] = replace(source.alert_rows[0], state="resolved", open_incident=False)
            await pilot.press("enter")
            assert await wait_until(pilot, lambda: app.main_screen.calls_pending == 0)
            assert any("only a firing alert" in str(n.message) for n in app._notifications)
            assert source.acks == []

    async def test_unack(self) -> None:
        """`u` removes the acknowledgement of the selected alert."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            table = await _open_alerts(pilot, app)
            await pilot.press("down", "u")
            assert await wait_until(pilot, lambda: _state(table, "alert_2") == "firing")
            assert source.unacks == ["alert_2"]
            assert table.cursor_row == 1

    async def test_enter_opens_details(self) -> None:
        """Enter opens the detail screen with timeline and deliveries; escape returns to the table."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            table = await _open_alerts(pilot, app)
            await pilot.press("enter")
            screen = app.screen
            assert isinstance(screen, AlertDetailScreen)
            assert await wait_until(pilot, lambda: screen.detail is not None)
            assert source.detail_reads == ["alert_1"]
            body = " ".join(str(widget.render()) for widget in screen.query("Static, Label"))
            assert "https://runbooks.example.org/cpu" in body
            assert "read_timeout" in body
            assert "inactive → firing" in body

            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            assert app.focused is table

    async def test_filter_cycles(self) -> None:
        """`f` shows only critical, then error, warning, info, and all again."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            table = await _open_alerts(pilot, app)
            seen = []
            for _ in range(5):
                await pilot.press("f")
                seen.append(_keys(table))
            assert seen == [
                ["alert_1"],
                ["alert_2"],
                ["alert_3", "alert_4"],
                ["alert_5"],
                ["alert_1", "alert_2", "alert_5", "alert_3", "alert_4"],
            ]


class TestData:
    """What the pane, the header and the banner show."""

    async def test_header_counts_on_metrics(self) -> None:
        """The Metrics pane's header counts firing alerts by severity."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_until(pilot, lambda: app.main_screen.alerts_shown > 0)
            assert app.main_screen.active_pane == "metrics"
            counts = app.main_screen.query_one("#header-alerts", Label)
            assert str(counts.render()) == "1 crit 1 err 1 info"

    async def test_banner_when_all_down(self) -> None:
        """All channels down for 7 minutes shows the red banner on the main and the detail screen."""
        source = FakeSource()
        source.channels_down_for = 420.0
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            await _open_alerts(pilot, app)
            banner = app.main_screen.query_one("#banner", ChannelsDownBanner)
            assert banner.display
            assert "All notification channels down for 7m 0s" in str(banner.render())

            await pilot.press("enter")
            detail_banner = app.screen.query_one(ChannelsDownBanner)
            assert detail_banner.display

    async def test_banner_hidden_when_working(self) -> None:
        """With a working channel the banner stays hidden."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            await _open_alerts(pilot, app)
            assert not app.main_screen.query_one("#banner", ChannelsDownBanner).display

    async def test_rule_error_shown(self) -> None:
        """A rule with an unknown metric and the missed evaluations are listed under the table."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            await _open_alerts(pilot, app)
            text = str(app.main_screen.query_one(RuleStatus).render())
            assert "rule typo error: unknown metric cpu_usge" in text
            assert "missed evaluations 2" in text

    async def test_rows_update_in_place(self) -> None:
        """A refresh that resolves one alert updates its cells; the cursor stays on its alert."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            table = await _open_alerts(pilot, app)
            await pilot.press("down", "down")
            shown = app.main_screen.alerts_shown
            source.alert_rows[1] = replace(source.alert_rows[1], value=12.0)
            await pilot.press("r")
            assert await wait_until(pilot, lambda: app.main_screen.alerts_shown > shown)
            assert table.get_cell("alert_2", "value").plain == "12"
            assert table.selected_key == "alert_5"

    async def test_new_order_keeps_cursor(self) -> None:
        """When an alert moves in the order, the cursor follows the selected alert."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            table = await _open_alerts(pilot, app)
            await pilot.press("down")
            shown = app.main_screen.alerts_shown
            source.alert_rows = list(reversed(source.alert_rows))
            await pilot.press("r")
            assert await wait_until(pilot, lambda: app.main_screen.alerts_shown > shown)
            assert _keys(table) == ["alert_4", "alert_3", "alert_5", "alert_2", "alert_1"]
            assert table.selected_key == "alert_2"


class TestSizes:
    """80x24 layout with long names, and resizes with the overlays open."""

    async def test_long_names_truncated(self) -> None:
        """A CJK/emoji alert name with markup and 200-character labels fit their columns with an ellipsis."""
        name = "[/] ウォレット残高が不足しています 🚨💸 " * 4
        rows = [
            AlertRow("alert_9", "wallet", name, "critical", "firing",
                     make_labels(path="/" + "x" * 200, node="n" * 100), 1e9, 5.0, open_incident=True),
            *default_alerts(),
        ]
        app = fake_app(FakeSource(host="h" * 100, alerts=rows))
        async with app.run_test(size=SIZE) as pilot:
            table = await _open_alerts(pilot, app)
            for column in table.columns.values():
                cell = table.get_cell("alert_9", column.key)
                assert cell_len(cell.plain) <= column.width
            assert table.get_cell("alert_9", "alert").plain.endswith("…")
            assert table.get_cell("alert_9", "labels").plain.endswith("…")
            assert table.virtual_size.width <= 80
            for label in app.main_screen.query("#header Label").results(Label):
                assert label.region.right <= 80

            await pilot.press("a")
            assert isinstance(app.screen, AckPrompt)
            assert app.screen.query_one("#ack-title", Label).region.height == 1
            await pilot.press("escape", "enter")
            assert isinstance(app.screen, AlertDetailScreen)
            assert await wait_until(pilot, lambda: app.screen.detail is not None)  # type: ignore[attr-defined]
            assert app.screen.query_one("#detail-title", Label).region.height == 1

    async def test_resizes_with_overlays(self) -> None:
        """Small sizes and 5 random resizes with the prompt, then the details, open raise nothing."""
        app = fake_app()
        sizes = random.Random(7)
        async with app.run_test(size=SIZE) as pilot:
            await _open_alerts(pilot, app)
            for keys in (("a",), ("enter",)):
                await pilot.press(*keys)
                for width, height in [(60, 15), (1, 1), (200, 60)]:
                    await pilot.resize_terminal(width, height)
                    await pilot.pause()
                for _ in range(5):
                    await pilot.resize_terminal(sizes.randint(1, 220), sizes.randint(1, 70))
                await pilot.resize_terminal(*SIZE)
                await pilot.pause()
                await pilot.press("escape")
                await pilot.pause()
            assert isinstance(app.screen, MainScreen)
            assert not app.main_screen.too_small

    async def test_detail_too_small_notice(self) -> None:
        """Below 80x24 the detail screen shows the too-small notice and recovers on enlarge."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            await _open_alerts(pilot, app)
            await pilot.press("enter")
            screen = app.screen
            await pilot.resize_terminal(40, 10)
            await pilot.pause()
            assert screen.has_class("-too-small")
            await pilot.resize_terminal(*SIZE)
            await pilot.pause()
            assert not screen.has_class("-too-small")

    async def test_pane_key_closes_details(self) -> None:
        """`1` on the detail screen closes it and shows the Metrics pane."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            await _open_alerts(pilot, app)
            await pilot.press("enter", "1")
            assert isinstance(app.screen, MainScreen)
            assert app.main_screen.active_pane == "metrics"
