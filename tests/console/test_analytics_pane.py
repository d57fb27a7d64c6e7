"""Pilot tests of the Analytics pane at 80x24 over the fake source: key, range, empty state and rows."""

from __future__ import annotations

from rich.cells import cell_len
from textual.widgets import Label, Static

from atlas_tui.console.analytics_models import EMPTY_TEXT
from atlas_tui.console.analytics_pane import AnalyticsPane
from atlas_tui.console.app import AtlasApp
from atlas_tui.console.widgets.dau_chart import DauChart
from atlas_tui.console.widgets.status_lines import StatusLines
from tests.console.analytics_fixtures import LONG_SCREEN, sample_summary
from tests.console.fake_source import FakeSource
from tests.console.pilot_helpers import fake_app, wait_until

SIZE = (80, 24)


async def _open_analytics(pilot, app: AtlasApp) -> AnalyticsPane:  # type: ignore[no-untyped-def]
    """Wait for the first analytics read, press `3` and return the pane."""
    assert await wait_until(pilot, lambda: app.main_screen.analytics_shown > 0)
    await pilot.press("3")
    await pilot.pause()
    return app.main_screen.query_one(AnalyticsPane)


def _lines(pane: AnalyticsPane, block_id: str) -> list[str]:
    section = pane.query_one(f"#{block_id}", StatusLines).section
    assert section is not None, f"{block_id} shows no section"
    return [line.text for line in section.lines]


def _screen_text(app: AtlasApp) -> str:
    """Return the screen as plain text, one line per terminal row."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


class TestKeys:
    """Switching to the pane and cycling its range."""

    async def test_three_shows_analytics(self) -> None:
        """`3` shows the Analytics pane."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            await _open_analytics(pilot, app)
            assert app.main_screen.active_pane == "analytics"

    async def test_t_cycles_range(self) -> None:
        """`t` moves 24h → 7d → 30d → 24h and requests each range from the source."""
        source = FakeSource()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open_analytics(pilot, app)
            seen = []
            for _ in range(3):
                await pilot.press("t")
                seen.append(pane.report_range.label)
            assert seen == ["7d", "30d", "24h"]
            assert await wait_until(pilot, lambda: source.analytics_ranges[-3:] == [604800.0, 2592000.0, 86400.0])

    async def test_range_bar_marks_selection(self) -> None:
        """The range bar highlights the selected range only."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open_analytics(pilot, app)
            await pilot.press("t")
            active = [label.id for label in pane.query(".range-choice.-active").results(Label)]
            assert active == ["range-7d"]


class TestEmptyState:
    """No summary: the notice takes the place of the sections."""

    async def test_empty_text_shown(self) -> None:
        """Without a summary the pane shows how to configure analytics."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open_analytics(pilot, app)
            notice = pane.query_one("#analytics-empty", Static)
            assert pane.has_class("-empty")
            assert str(notice.render()) == EMPTY_TEXT

    async def test_empty_text_on_screen(self) -> None:
        """The start of the notice is visible at 80x24."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            await _open_analytics(pilot, app)
            assert "no analytics data yet" in _screen_text(app)


class TestRows:
    """A summary from the fake source fills every section."""

    async def _pane(self, pilot, app: AtlasApp) -> AnalyticsPane:  # type: ignore[no-untyped-def]
        return await _open_analytics(pilot, app)

    async def test_releases_rows(self) -> None:
        """One line per release, most sessions first, with both crash-free rates and p95."""
        source = FakeSource()
        source.analytics_summary = sample_summary()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            pane = await self._pane(pilot, app)
            lines = _lines(pane, "analytics-releases")
            assert not pane.has_class("-empty")
            assert lines[1].split() == ["2.3.0", "ios", "99.7%", "99.2%", "820ms"]
            assert lines[2].split() == ["2.2.0", "android", "97.2%", "95.0%", "1,430ms"]

    async def test_ingest_rows(self) -> None:
        """The ingest view lists rate, outcomes, reasons, skew, lateness and last events."""
        source = FakeSource()
        source.analytics_summary = sample_summary()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            pane = await self._pane(pilot, app)
            lines = _lines(pane, "analytics-ingest")
            assert lines[0] == "312.5 events/min · 45,000 accepted"
            assert lines[1] == "410 duplicate · 8 rejected"
            assert lines[2].strip() == "missing_event_id 5, too_old 3"
            assert lines[3] == "skew median 1s · lateness max 2h 0m"
            assert lines[4].startswith("2.3.0 ios ")
            assert lines[4].endswith("12s ago")
            assert lines[5].endswith("1h 0m ago")

    async def test_screens_and_assets(self) -> None:
        """Top screens cut long names with `…`; transactions add up all types per asset."""
        source = FakeSource()
        source.analytics_summary = sample_summary()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            pane = await self._pane(pilot, app)
            screens = _lines(pane, "analytics-screens")
            assets = _lines(pane, "analytics-transactions")
            assert screens[1].startswith("home")
            assert screens[3].startswith(LONG_SCREEN[:13] + "…")
            assert assets[0].split() == ["BTC", "1.75", "50", "tx"]
            assert assets[1].split() == ["ETH", "14.50", "22", "tx"]

    async def test_dau_chart_days(self) -> None:
        """The chart gets one bar per daily row."""
        source = FakeSource()
        source.analytics_summary = sample_summary()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            pane = await self._pane(pilot, app)
            view = pane.query_one(DauChart).view
            assert view is not None
            assert len(view.xs) == 15
            assert view.ys[-1] == 105.0

    async def test_lines_fit_80_columns(self) -> None:
        """No screen row is wider than the terminal and cut text ends with `…`."""
        source = FakeSource()
        source.analytics_summary = sample_summary()
        app = fake_app(source)
        async with app.run_test(size=SIZE) as pilot:
            await self._pane(pilot, app)
            rows = _screen_text(app).splitlines()
            assert all(cell_len(row) <= SIZE[0] for row in rows)
            assert any("DAU 120" in row and row.rstrip().endswith("…") for row in rows)
