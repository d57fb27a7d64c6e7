"""Pilot tests of the help overlay, the acknowledgement prompt and the alert details: keys and small terminals."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input

from atlas_tui.console.ack_prompt import AckPrompt
from atlas_tui.console.alert_detail_screen import AlertDetailScreen
from atlas_tui.console.app import AtlasApp
from atlas_tui.console.help_screen import HelpScreen
from atlas_tui.console.main_screen import MainScreen
from atlas_tui.console.widgets.alerts_table import AlertsTable
from atlas_tui.console.widgets.metrics_table import MetricsTable
from atlas_tui.console.widgets.too_small_notice import TooSmallNotice
from tests.console.fake_source import FakeSource
from tests.console.pilot_helpers import fake_app, wait_for_snapshots, wait_until

SIZE = (80, 24)
SMALL = (30, 8)


def _visible_notice(screen: Screen[object]) -> TooSmallNotice | None:
    """Return the too-small notice the screen shows, or None when none is visible."""
    for notice in screen.query(TooSmallNotice):
        if notice.display and notice.region.width > 0 and notice.region.height > 0:
            return notice
    return None


async def _shrink_and_grow(pilot: Pilot[None], app: AtlasApp, overlay: type[Screen[object]]) -> None:
    """Shrink to 30x8 with `overlay` open, check the notice shows, grow to 80x24, check it is gone."""
    await pilot.resize_terminal(*SMALL)
    await pilot.pause()
    assert isinstance(app.screen, overlay)
    notice = _visible_notice(app.screen)
    assert notice is not None
    assert "terminal too small" in str(notice.render())
    assert "have 30x8" in str(notice.render())
    assert notice.region.width == SMALL[0]

    await pilot.resize_terminal(*SIZE)
    await pilot.pause()
    assert isinstance(app.screen, overlay)
    assert _visible_notice(app.screen) is None


class TestHelpKeys:
    """Keys that act while the help overlay is open."""

    async def test_q_quits_from_help(self) -> None:
        """`q`, which the help lists as quitting, quits while the help is open."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for_snapshots(pilot)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("q")
            assert await wait_until(pilot, lambda: not app.is_running)
        assert app.return_code == 0
        assert source.closed.wait(2.0)

    async def test_two_closes_help_shows_alerts(self) -> None:
        """`2` closes the help and shows the Alerts pane with its table focused."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for_snapshots(pilot)
            await pilot.press("question_mark", "2")
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
            assert app.main_screen.active_pane == "alerts"
            assert isinstance(app.focused, AlertsTable)

    async def test_one_closes_help_shows_metrics(self) -> None:
        """`1` closes the help opened over the Alerts pane and shows the Metrics pane."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for_snapshots(pilot)
            await pilot.press("2", "question_mark", "1")
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
            assert app.main_screen.active_pane == "metrics"
            assert isinstance(app.focused, MetricsTable)


class TestSmallTerminal:
    """Each overlay shows the too-small notice below 80x24 and recovers on enlarge."""

    async def test_help_too_small(self) -> None:
        """The help overlay gives way to the notice at 30x8 and comes back at 80x24."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for_snapshots(pilot)
            await pilot.press("question_mark")
            await _shrink_and_grow(pilot, app, HelpScreen)
            assert app.screen.query_one("#help-box").region.height > 0

    async def test_help_opened_when_small(self) -> None:
        """Help opened in a 30x8 terminal shows the notice at once."""
        app = fake_app()
        async with app.run_test(size=SMALL) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            assert _visible_notice(app.screen) is not None

    async def test_ack_prompt_too_small_keeps_note(self) -> None:
        """The prompt gives way to the notice and comes back with the typed note and the keyboard."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_until(pilot, lambda: app.main_screen.alerts_shown > 0)
            await pilot.press("2", "a", "o", "k")
            assert isinstance(app.screen, AckPrompt)
            await _shrink_and_grow(pilot, app, AckPrompt)
            await pilot.press("!")
            prompt_input = app.screen.query_one(Input)
            assert prompt_input.value == "ok!"
            assert app.focused is prompt_input

    async def test_alert_detail_too_small(self) -> None:
        """The alert details give way to the notice at 30x8 and come back at 80x24."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_until(pilot, lambda: app.main_screen.alerts_shown > 0)
            await pilot.press("2", "enter")
            assert await wait_until(pilot, lambda: app.main_screen.calls_pending == 0)
            await _shrink_and_grow(pilot, app, AlertDetailScreen)
            assert app.screen.query_one("#detail-body").region.height > 0
