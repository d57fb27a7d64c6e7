"""Snapshot tests of every console pane and overlay at 80x24 over the deterministic demo store.

The baselines under `__snapshots__/` are SVGs; update them with `pytest
--snapshot-update` only after looking at the new pictures. `snap_compare` runs the
app itself, so these tests are synchronous.
"""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot

from atlas_tui.console.demo_store import build_demo_store, create_demo_app
from atlas_tui.console.screenshots import LOAD_TIMEOUT, wait_for_calls, wait_for_data


class TestMetricsPane:
    """The Metrics pane and the help overlay on top of it."""

    def test_metrics_80x24(self, snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """The Metrics pane at the minimum size matches the baseline."""
        build_demo_store(tmp_path)
        assert snap_compare(create_demo_app(tmp_path), terminal_size=(80, 24), run_before=_loaded)

    def test_metrics_1h_80x24(self, snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """The 1 h window (`w`) reads minute rollups and matches the baseline."""
        build_demo_store(tmp_path)
        assert snap_compare(create_demo_app(tmp_path), terminal_size=(80, 24), run_before=_one_hour)

    def test_help_80x24(self, snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """The help overlay at the minimum size matches the baseline."""
        build_demo_store(tmp_path)
        assert snap_compare(
            create_demo_app(tmp_path), terminal_size=(80, 24), run_before=_loaded, press=["question_mark"]
        )


class TestAlertsPane:
    """The Alerts pane, the acknowledgement prompt and the detail screen over the demo alerts."""

    def test_alerts_80x24(self, snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """Firing, acknowledged, silenced, pending, resolved and no-data rows with channel health."""
        build_demo_store(tmp_path)
        assert snap_compare(create_demo_app(tmp_path), terminal_size=(80, 24), run_before=_alerts)

    def test_ack_prompt_80x24(self, snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """The acknowledgement prompt with a typed note over the pane."""
        build_demo_store(tmp_path)
        assert snap_compare(
            create_demo_app(tmp_path), terminal_size=(80, 24), run_before=_alerts, press=["a", "o", "k"]
        )

    def test_alert_detail_80x24(self, snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """The acknowledged alert's details: labels, runbook, timeline and deliveries per channel."""
        build_demo_store(tmp_path)
        assert snap_compare(create_demo_app(tmp_path), terminal_size=(80, 24), run_before=_acked_detail)


class TestAnalyticsPane:
    """The Analytics pane over the demo store's ingested events."""

    def test_analytics_80x24(self, snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """Usage, the DAU chart, releases, ingest, top screens and assets at the minimum size."""
        build_demo_store(tmp_path)
        assert snap_compare(create_demo_app(tmp_path), terminal_size=(80, 24), run_before=_analytics)


class TestBackupsPane:
    """The Backups pane over the demo repository and run records."""

    def test_backups_80x24(self, snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """Sets with a failed one, four snapshots (one partial) with new data, at the minimum size."""
        build_demo_store(tmp_path)
        assert snap_compare(create_demo_app(tmp_path), terminal_size=(80, 24), run_before=_backups)


async def _backups(pilot: Pilot[None]) -> None:
    await wait_for_data(pilot)
    await pilot.press("4")
    await pilot.pause()


async def _analytics(pilot: Pilot[None]) -> None:
    await wait_for_data(pilot)
    await pilot.press("3")
    await pilot.pause()


async def _alerts(pilot: Pilot[None]) -> None:
    await wait_for_data(pilot)
    await pilot.press("2")
    await pilot.pause()


async def _acked_detail(pilot: Pilot[None]) -> None:
    await _alerts(pilot)
    await pilot.press("down", "down", "enter")
    await wait_for_calls(pilot)
    await pilot.pause()


async def _loaded(pilot: Pilot[None]) -> None:
    await wait_for_data(pilot)


async def _one_hour(pilot: Pilot[None]) -> None:
    await wait_for_data(pilot)
    await pilot.press("w")
    app = pilot.app
    # On a busy machine the minute rollups took more than two seconds, and the shot
    # then showed the 5 min window. This waits as long as for the first data.
    for _ in range(int(LOAD_TIMEOUT / 0.05)):
        if app.main_screen.snapshots_shown >= 2:  # type: ignore[attr-defined]
            break
        await pilot.pause(0.05)
    assert app.main_screen.snapshots_shown >= 2, "the 1 h window did not load"  # type: ignore[attr-defined]
    await pilot.pause()
