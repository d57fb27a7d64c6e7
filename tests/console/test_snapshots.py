"""Snapshot tests of every console pane at 80x24 over the deterministic demo store.

The baselines under `__snapshots__/` are SVGs; update them with `pytest
--snapshot-update` only after looking at the new pictures. `snap_compare` runs the
app itself, so these tests are synchronous.
"""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot

from atlas_tui.console.demo_store import build_demo_store, create_demo_app
from atlas_tui.console.screenshots import wait_for_data


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


async def _loaded(pilot: Pilot[None]) -> None:
    await wait_for_data(pilot)


async def _one_hour(pilot: Pilot[None]) -> None:
    await wait_for_data(pilot)
    await pilot.press("w")
    app = pilot.app
    for _ in range(100):
        if app.main_screen.snapshots_shown >= 2:  # type: ignore[attr-defined]
            break
        await pilot.pause(0.02)
    await pilot.pause()
