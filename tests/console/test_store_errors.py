"""Pilot tests of a console whose store cannot be opened or read: the error stays on screen."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Label

from atlas_tui.config import Config
from atlas_tui.console.app import AtlasApp, create_app
from atlas_tui.console.widgets.store_error_notice import StoreErrorNotice
from storage.db import DB_FILENAME
from tests.console.fake_source import NOW
from tests.console.pilot_helpers import wait_for_snapshots, wait_until
from tests.storage.damage import build_store, damage_pages, last_table_root


def _store_app(data_dir: Path) -> AtlasApp:
    """Return the console over the store in `data_dir`, with live refresh off."""
    return create_app(Config(), data_dir, live=False, clock=lambda: NOW)


def _label_text(app: AtlasApp, selector: str) -> str:
    return str(app.main_screen.query_one(selector, Label).render())


async def _wait_for_store_error(pilot: Pilot[None]) -> bool:
    app = pilot.app
    assert isinstance(app, AtlasApp)
    return await wait_until(pilot, lambda: app.main_screen.store_error is not None, timeout=10.0)


async def _assert_error_persists(pilot: Pilot[None], app: AtlasApp, fragment: str) -> None:
    """Check the header and the notice show an error containing `fragment`, also after more refreshes."""
    for _ in range(3):
        await pilot.press("r")
        await pilot.pause(0.1)
        screen = app.main_screen
        age = _label_text(app, "#header-age")
        assert age.startswith("store error: ")
        assert fragment in age
        assert screen.query_one("#header-age", Label).has_class("-problem")
        assert "loading…" not in _label_text(app, "#header-host")
        assert screen.showing_store_error
        notice = screen.query_one(StoreErrorNotice)
        assert notice.display
        assert fragment in str(notice.render())
        assert "--data-dir" in str(notice.render())
        assert not screen.query_one("#panes").display


async def test_data_dir_is_file(tmp_path: Path) -> None:
    """A data directory path that names a file keeps `store error` in the header and the notice."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    app = _store_app(blocker)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await _wait_for_store_error(pilot)
        await _assert_error_persists(pilot, app, "not a directory")


async def test_store_file_not_database(tmp_path: Path) -> None:
    """An atlas.db that is not an SQLite file keeps the error on screen."""
    (tmp_path / DB_FILENAME).write_bytes(b"garbage, not a database " * 200)
    app = _store_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await _wait_for_store_error(pilot)
        await _assert_error_persists(pilot, app, "atlas.db")


async def test_store_damaged_pages(tmp_path: Path) -> None:
    """A store with damaged data pages is reported before embedded collection writes to it."""
    path = build_store(tmp_path)
    assert damage_pages(path, first=last_table_root(path) + 1, every=2) > 0
    app = _store_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await _wait_for_store_error(pilot)
        await _assert_error_persists(pilot, app, "atlas.db")
        assert not app.source.embedded  # type: ignore[attr-defined]


async def test_store_error_clears_on_data(tmp_path: Path) -> None:
    """Once the store opens, the next snapshot hides the notice and the header shows the data age."""
    data_dir = tmp_path / "data"
    data_dir.write_text("x")
    app = _store_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await _wait_for_store_error(pilot)
        data_dir.unlink()
        await pilot.press("r")
        assert await wait_for_snapshots(pilot)
        await pilot.pause()
        screen = app.main_screen
        assert screen.store_error is None
        assert not screen.showing_store_error
        assert not screen.query_one(StoreErrorNotice).display
        assert screen.query_one("#panes").display
        assert not _label_text(app, "#header-age").startswith("store error")
