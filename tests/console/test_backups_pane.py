"""Pilot tests of the Backups pane at 80x24 over a real repository in tmp_path: keys, jobs, results and problems."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from atlas_tui.backup.packs import pack_path
from atlas_tui.backup.repository import Repository
from atlas_tui.config import Config
from atlas_tui.console.app import AtlasApp, create_app
from atlas_tui.console.backup_models import BackupsRead, JobOutcome, JobRequest, ProgressReport
from atlas_tui.console.backups_pane import BackupsPane
from atlas_tui.console.local_backups import LocalBackups
from atlas_tui.console.remote_backups import REMOTE_ONLY_TEXT
from atlas_tui.console.widgets.backup_table import BackupTable
from tests.console.backup_fixtures import PASSPHRASE, BackupSetup, make_backup_setup, without_passphrase
from tests.console.fake_source import NOW, FakeSource
from tests.console.pilot_helpers import fake_app, wait_until

SIZE = (80, 24)
FIRST_ID = "backup_1750000000_manual"


def _app(setup: BackupSetup, config: Config | None = None, backups: object | None = None) -> AtlasApp:
    config = config or setup.config
    source = backups if backups is not None else LocalBackups(config, setup.data_dir)
    return create_app(config, setup.data_dir, source=FakeSource(), backups=source, live=False,  # type: ignore[arg-type]
                      clock=lambda: NOW)


async def _open(pilot: Pilot[None], app: AtlasApp) -> BackupsPane:
    """Press `4`, wait for the first read and return the pane."""
    await pilot.press("4")
    pane = app.main_screen.query_one(BackupsPane)
    assert await wait_until(pilot, lambda: pane.reads_shown > 0), "no backups read arrived"
    return pane


async def _run(pilot: Pilot[None], pane: BackupsPane, key: str) -> JobOutcome:
    """Press `key`, wait until its job finished and the repository was read again, and return the outcome."""
    jobs, reads = pane.jobs_finished, pane.reads_shown
    await pilot.press(key)
    assert await wait_until(pilot, lambda: pane.jobs_finished > jobs, timeout=10), f"{key} did not finish"
    assert await wait_until(pilot, lambda: pane.reads_shown > reads), f"no read after {key}"
    assert pane.outcome is not None
    return pane.outcome


def _screen_text(app: AtlasApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _snapshot_keys(pane: BackupsPane) -> list[str]:
    table = pane.query_one("#backup-snapshots", BackupTable)
    return [str(key.value) for key in table.rows]


class TestJobs:
    """`b`, `v` and `i` run the engine and show the result."""

    async def test_backup_adds_snapshot(self, tmp_path: Path) -> None:
        """`b` backs up, shows the result line and lists the new snapshot under the cursor."""
        setup = make_backup_setup(tmp_path)
        app = _app(setup)
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open(pilot, app)
            assert _snapshot_keys(pane) == []
            outcome = await _run(pilot, pane, "b")
            assert outcome.status == "ok"
            assert _snapshot_keys(pane) == [FIRST_ID]
            assert pane.selected_snapshot == FIRST_ID
            assert f"Backup {FIRST_ID} ok: 6 files" in _screen_text(app)

    async def test_verify_and_integrity(self, tmp_path: Path) -> None:
        """`v` test-restores and `i` checks the selected snapshot; both report ok on the pane."""
        setup = make_backup_setup(tmp_path)
        app = _app(setup)
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open(pilot, app)
            await _run(pilot, pane, "b")
            verified = await _run(pilot, pane, "v")
            assert verified.verify is not None and verified.verify.id == FIRST_ID
            assert f"Verify {FIRST_ID} ok: 8 entries restored" in _screen_text(app)
            checked = await _run(pilot, pane, "i")
            assert checked.status == "ok"
            assert f"Integrity check of {FIRST_ID} ok" in _screen_text(app)

    async def test_cursor_selects_snapshot(self, tmp_path: Path) -> None:
        """After two backups, `down` selects the older snapshot and `v` verifies that one."""
        setup = make_backup_setup(tmp_path)
        app = _app(setup)
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open(pilot, app)
            await _run(pilot, pane, "b")
            await _run(pilot, pane, "b")
            newer = "backup_1750000001_manual"
            assert _snapshot_keys(pane) == [newer, FIRST_ID]
            await pilot.press("up", "down")
            outcome = await _run(pilot, pane, "v")
            assert outcome.request.snapshot_id == FIRST_ID

    async def test_damaged_pack_named(self, tmp_path: Path) -> None:
        """`i` on a snapshot with a flipped byte in a pack fails and names the pack."""
        setup = make_backup_setup(tmp_path)
        app = _app(setup)
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open(pilot, app)
            await _run(pilot, pane, "b")
            pack_id = _damage_first_pack(setup.repository)
            outcome = await _run(pilot, pane, "i")
            assert outcome.status == "failed"
            assert outcome.integrity is not None
            assert [item.pack for item in outcome.integrity.damaged] == [pack_id]
            assert f"damaged pack {pack_id[:20]}" in _screen_text(app)

    async def test_one_job_at_a_time(self, tmp_path: Path) -> None:
        """A key pressed while a job runs starts nothing and names the running job."""
        setup = make_backup_setup(tmp_path)
        gated = _GatedBackups(LocalBackups(setup.config, setup.data_dir))
        app = _app(setup, backups=gated)
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open(pilot, app)
            await pilot.press("b")
            assert await wait_until(pilot, gated.entered.is_set)
            await pilot.press("b")
            await pilot.pause()
            assert [n.message for n in app._notifications] == ["Backup is still running; wait for it to finish"]
            gated.release.set()
            assert await wait_until(pilot, lambda: pane.jobs_finished == 1, timeout=10)
            assert gated.calls == 1


class TestProblems:
    """Failures the user can fix are shown as text on the pane."""

    async def test_missing_passphrase(self, tmp_path: Path) -> None:
        """Without a passphrase the notice names what to set, and `b` fails with the same text."""
        setup = make_backup_setup(tmp_path)
        app = _app(setup, config=without_passphrase(setup))
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open(pilot, app)
            assert pane.has_class("-problem")
            assert "no backup passphrase" in _screen_text(app)
            outcome = await _run(pilot, pane, "b")
            assert outcome.problem is not None and outcome.problem.kind == "passphrase_missing"
            assert "Backup failed: no backup passphrase" in _screen_text(app)

    async def test_missing_repository(self, tmp_path: Path) -> None:
        """Without a repository the notice names the path, and `v` reports nothing to check."""
        setup = make_backup_setup(tmp_path, init=False)
        app = _app(setup)
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open(pilot, app)
            assert "no backup repository at" in _screen_text(app)
            await pilot.press("v")
            await pilot.pause()
            assert [n.message for n in app._notifications] == [
                "no snapshot to check: the repository could not be read"
            ]

    async def test_wrong_passphrase(self, tmp_path: Path) -> None:
        """A wrong passphrase is named on the pane; no snapshot rows appear."""
        setup = make_backup_setup(tmp_path)
        _backup_once(setup)
        setup.passphrase_file.write_text("wrong\n")
        app = _app(setup)
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open(pilot, app)
            assert "wrong passphrase for the backup repository" in _screen_text(app)
            assert _snapshot_keys(pane) == []

    async def test_remote_console_note(self) -> None:
        """A console over another source shows that backups are visible on the daemon host only."""
        app = fake_app()
        async with app.run_test(size=SIZE) as pilot:
            pane = await _open(pilot, app)
            assert pane.read is not None and pane.read.problem is not None
            assert pane.read.problem.message == REMOTE_ONLY_TEXT
            assert "backups are visible on the daemon host only" in _screen_text(app)
            assert pane.has_class("-remote"), "the empty tables are hidden on a remote console"


async def test_help_lists_backup_keys(tmp_path: Path) -> None:
    """The help screen lists `4`, `b`, `v` and `i`."""
    app = fake_app()
    async with app.run_test(size=SIZE):
        entries = dict(app.help_entries())
    assert entries["4"] == "Show the Backups pane"
    assert entries["b"] == "Back up the configured sets now"
    assert entries["v"] == "Test-restore the selected snapshot"
    assert entries["i"] == "Check every chunk of the selected snapshot"


class _GatedBackups:
    """Delegates to a real `LocalBackups`, but blocks each job until `release` is set."""

    def __init__(self, inner: LocalBackups) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def read(self, now: float) -> BackupsRead:
        return self.inner.read(now)

    def run_job(
        self, request: JobRequest, now: float, report: ProgressReport, is_cancelled: Callable[[], bool]
    ) -> JobOutcome:
        self.calls += 1
        self.entered.set()
        self.release.wait(10)
        return self.inner.run_job(request, now, report, is_cancelled)


def _backup_once(setup: BackupSetup) -> None:
    backups = LocalBackups(setup.config, setup.data_dir)
    outcome = backups.run_job(JobRequest(kind="backup"), NOW, lambda progress: None, lambda: False)
    assert outcome.status == "ok"


def _damage_first_pack(repository: Path) -> str:
    pack_id = Repository.open(repository, PASSPHRASE).pack_ids()[0]
    path = pack_path(repository, pack_id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return pack_id
