"""Bounded polling helpers and an app factory for the console's Pilot tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from atlas_tui.config import Config
from atlas_tui.console.app import AtlasApp, create_app
from tests.console.fake_source import NOW, FakeSource

POLL = 0.02


def fake_app(source: FakeSource | None = None, *, tmp: Path = Path("/nonexistent")) -> AtlasApp:
    """Return the console over a fake source, with live refresh off and a fixed clock."""
    return create_app(Config(), tmp, source=source or FakeSource(), live=False, clock=lambda: NOW)


async def wait_until(pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Pause the pilot until `condition()` is true or `timeout` seconds passed; return it."""
    for _ in range(int(timeout / POLL)):
        if condition():
            return True
        await pilot.pause(POLL)
    return condition()


async def wait_for_snapshots(pilot: Pilot[None], count: int = 1) -> bool:
    """Wait until the main screen has shown at least `count` snapshots."""
    app = pilot.app
    assert isinstance(app, AtlasApp)
    return await wait_until(pilot, lambda: app.main_screen.snapshots_shown >= count)
