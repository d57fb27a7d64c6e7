"""`LocalBackups` and `RemoteBackups` against a real repository and store: reads, jobs, problems and run records."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlas_tui.backup.lock import RepositoryLock
from atlas_tui.backup.packs import pack_path
from atlas_tui.backup.repository import Repository
from atlas_tui.console.backup_models import JobProgress, JobRequest
from atlas_tui.console.local_backups import LocalBackups
from atlas_tui.console.remote_backups import REMOTE_ONLY_TEXT, RemoteBackups
from atlas_tui.config import Config
from storage.backup_runs import finish_run, recent_runs, start_run
from storage.db import open_store
from tests.console.backup_fixtures import PASSPHRASE, BackupSetup, make_backup_setup, without_passphrase

NOW = 1_750_000_000.0


def _never_cancelled() -> bool:
    return False


def _backup(backups: LocalBackups, now: float = NOW) -> str:
    outcome = backups.run_job(JobRequest(kind="backup"), now, lambda progress: None, _never_cancelled)
    assert outcome.backup is not None and outcome.backup.id is not None, outcome
    return outcome.backup.id


@pytest.fixture
def setup(tmp_path: Path) -> BackupSetup:
    return make_backup_setup(tmp_path)


class TestRead:
    """`read`: snapshots, sets, size and the problems a user can fix."""

    def test_snapshots_newest_first(self, setup: BackupSetup) -> None:
        """Two backups show as two snapshot rows, the newer first, with files and sizes."""
        backups = LocalBackups(setup.config, setup.data_dir)
        first = _backup(backups, NOW - 3600)
        second = _backup(backups)
        read = backups.read(NOW)
        assert read.problem is None
        assert [row.id for row in read.snapshots] == [second, first]
        assert read.snapshots[0].files == 6
        assert read.snapshots[0].size_bytes == 200_000 + sum(len(f'{{"peer": {i}}}\n') for i in range(5))
        assert read.repository_bytes is not None and read.repository_bytes > 0

    def test_damaged_snapshot_shows_others(self, setup: BackupSetup) -> None:
        """A snapshot file that cannot be read becomes the pane's notice, and the other snapshots still show."""
        backups = LocalBackups(setup.config, setup.data_dir)
        first = _backup(backups, NOW - 3600)
        second = _backup(backups)
        snapshot_file = setup.repository / "snapshots" / first
        snapshot_file.write_bytes(snapshot_file.read_bytes()[:50])

        read = LocalBackups(setup.config, setup.data_dir).read(NOW)

        assert [row.id for row in read.snapshots] == [second]
        assert read.problem is not None
        assert read.problem.kind == "damaged"
        assert f"snapshot {first} cannot be read" in read.problem.message
        assert f"backup-manager delete --id {first}" in read.problem.message

    def test_set_row_from_snapshots(self, setup: BackupSetup) -> None:
        """The configured set shows its last run, status, size and next run from the snapshots."""
        backups = LocalBackups(setup.config, setup.data_dir)
        _backup(backups)
        (row,) = backups.read(NOW + 60).sets
        assert row.name == "node"
        assert row.last_run_time == NOW
        assert row.last_status == "ok"
        assert row.last_success_time == NOW
        assert row.next_run == NOW + setup.config.backup.backup_frequency

    def test_missing_repository(self, tmp_path: Path) -> None:
        """No repository gives `repository_missing` with the init command, and the set still listed."""
        setup = make_backup_setup(tmp_path, init=False)
        read = LocalBackups(setup.config, setup.data_dir).read(NOW)
        assert read.problem is not None
        assert read.problem.kind == "repository_missing"
        assert "backup-manager init" in read.problem.message
        assert [row.name for row in read.sets] == ["node"]
        assert read.snapshots == ()

    def test_missing_passphrase_names_sources(self, setup: BackupSetup) -> None:
        """Without variable or file the problem names both, and nothing prompts."""
        read = LocalBackups(without_passphrase(setup), setup.data_dir).read(NOW)
        assert read.problem is not None
        assert read.problem.kind == "passphrase_missing"
        assert "ATLAS_TEST_NO_SUCH_VARIABLE" in read.problem.message
        assert "backup.passphrase_file" in read.problem.message
        assert read.repository_bytes is not None

    def test_passphrase_from_environment(self, setup: BackupSetup, monkeypatch: pytest.MonkeyPatch) -> None:
        """The variable named by `passphrase_env` opens the repository like the CLI."""
        monkeypatch.setenv("ATLAS_TEST_NO_SUCH_VARIABLE", PASSPHRASE.decode())
        read = LocalBackups(without_passphrase(setup), setup.data_dir).read(NOW)
        assert read.problem is None

    def test_wrong_passphrase(self, setup: BackupSetup) -> None:
        """A wrong passphrase is a `wrong_passphrase` problem naming the repository."""
        setup.passphrase_file.write_text("not it\n")
        read = LocalBackups(setup.config, setup.data_dir).read(NOW)
        assert read.problem is not None
        assert read.problem.kind == "wrong_passphrase"
        assert str(setup.repository) in read.problem.message

    def test_default_repository_in_data_dir(self, tmp_path: Path) -> None:
        """Without `backup.repository` the repository is `backups` in the data directory, and the set is `data`."""
        backups = LocalBackups(Config(), tmp_path)
        assert backups.repository == tmp_path / "backups"
        assert [row.name for row in backups.read(NOW).sets] == ["data"]


class TestRunRecords:
    """The store's run records add failed runs, running runs and new data."""

    def test_backup_is_recorded(self, setup: BackupSetup) -> None:
        """A backup from the pane is recorded: the snapshot shows its new data and the set its next run."""
        backups = LocalBackups(setup.config, setup.data_dir)
        outcome = backups.run_job(JobRequest(kind="backup"), NOW, lambda progress: None, _never_cancelled)
        read = backups.read(NOW + 60)
        assert read.runs_recorded
        assert outcome.backup is not None
        assert read.snapshots[0].new_bytes == outcome.backup.new_bytes_stored > 0
        assert read.sets[0].next_run == NOW + setup.config.backup.backup_frequency

    def test_checks_are_recorded(self, setup: BackupSetup) -> None:
        """Verify and integrity from the pane are recorded like those of `backup-manager`, a cancel as failed."""
        backups = LocalBackups(setup.config, setup.data_dir)
        snapshot_id = _backup(backups)
        for kind in ("verify", "integrity"):
            backups.run_job(JobRequest(kind=kind, snapshot_id=snapshot_id), NOW, lambda p: None, _never_cancelled)
        backups.run_job(JobRequest(kind="verify", snapshot_id=snapshot_id), NOW, lambda p: None, lambda: True)
        conn = open_store(setup.data_dir)
        try:
            runs = recent_runs(conn, repository=str(setup.repository))
        finally:
            conn.close()
        checks = sorted((run.kind, run.status, run.snapshot_id, run.error or "") for run in runs if run.kind != "backup")
        assert checks == [
            ("integrity", "ok", snapshot_id, ""),
            ("verify", "failed", snapshot_id, "verify stopped because the console quit"),
            ("verify", "ok", snapshot_id, ""),
        ]

    def test_failed_run_after_snapshot(self, setup: BackupSetup) -> None:
        """A failed run newer than the last snapshot shows as the set's last run; last ok stays."""
        backups = LocalBackups(setup.config, setup.data_dir)
        _backup(backups)
        conn = open_store(setup.data_dir)
        try:
            run_id = start_run(conn, kind="backup", trigger="scheduled", now=NOW + 600, set_name="node",
                               repository=str(setup.repository))
            finish_run(conn, run_id, status="failed", now=NOW + 605, error="disk unplugged")
        finally:
            conn.close()
        (row,) = backups.read(NOW + 900).sets
        assert (row.last_run_time, row.last_status, row.last_success_time) == (NOW + 600, "failed", NOW)
        assert row.next_run is not None and row.next_run < NOW + 900 + 3600, "a failed set is retried soon"

    def test_other_repository_ignored(self, setup: BackupSetup) -> None:
        """Run records of another repository do not change this repository's sets."""
        backups = LocalBackups(setup.config, setup.data_dir)
        _backup(backups)
        conn = open_store(setup.data_dir)
        try:
            run_id = start_run(conn, kind="backup", trigger="manual", now=NOW + 600, set_name="node",
                               repository="/elsewhere")
            finish_run(conn, run_id, status="failed", now=NOW + 605)
        finally:
            conn.close()
        (row,) = backups.read(NOW + 900).sets
        assert row.last_status == "ok"

    def test_no_store_no_records(self, setup: BackupSetup) -> None:
        """Without a store the pane still reads the repository and marks the records missing."""
        read = LocalBackups(setup.config, setup.data_dir).read(NOW)
        assert read.runs_recorded is False
        assert read.problem is None


class TestJobs:
    """`run_job`: backup, verify and integrity on a real repository."""

    def test_backup_reports_progress(self, setup: BackupSetup) -> None:
        """A backup reports progress at least once and returns the engine's result."""
        reports: list[JobProgress] = []
        backups = LocalBackups(setup.config, setup.data_dir)
        outcome = backups.run_job(JobRequest(kind="backup"), NOW, reports.append, _never_cancelled)
        assert outcome.status == "ok"
        assert outcome.backup is not None and outcome.backup.id == "backup_1750000000_manual"
        assert reports and reports[0].request.kind == "backup"

    def test_verify_ok(self, setup: BackupSetup) -> None:
        """Verify of a fresh snapshot restores and compares every entry."""
        backups = LocalBackups(setup.config, setup.data_dir)
        snapshot_id = _backup(backups)
        request = JobRequest(kind="verify", snapshot_id=snapshot_id)
        outcome = backups.run_job(request, NOW, lambda p: None, _never_cancelled)
        assert outcome.status == "ok"
        assert outcome.verify is not None and outcome.verify.checked == 8

    def test_integrity_names_damaged_pack(self, setup: BackupSetup) -> None:
        """A flipped byte in a pack fails the integrity check and names the pack."""
        backups = LocalBackups(setup.config, setup.data_dir)
        snapshot_id = _backup(backups)
        damaged = _flip_byte_in_a_pack(setup.repository)
        request = JobRequest(kind="integrity", snapshot_id=snapshot_id)
        outcome = backups.run_job(request, NOW, lambda p: None, _never_cancelled)
        assert outcome.status == "failed"
        assert outcome.integrity is not None
        assert [item.pack for item in outcome.integrity.damaged] == [damaged]

    def test_unknown_snapshot(self, setup: BackupSetup) -> None:
        """Verify of a deleted snapshot is a `snapshot_missing` problem, not an exception."""
        backups = LocalBackups(setup.config, setup.data_dir)
        request = JobRequest(kind="verify", snapshot_id="backup_1_manual")
        outcome = backups.run_job(request, NOW, lambda p: None, _never_cancelled)
        assert outcome.status == "failed"
        assert outcome.problem is not None and outcome.problem.kind == "snapshot_missing"

    def test_locked_repository(self, setup: BackupSetup) -> None:
        """A backup while another holder has the lock is a `locked` problem naming the pid."""
        backups = LocalBackups(setup.config, setup.data_dir)
        with RepositoryLock(setup.repository, now=NOW):
            outcome = backups.run_job(JobRequest(kind="backup"), NOW, lambda p: None, _never_cancelled)
        assert outcome.problem is not None
        assert outcome.problem.kind == "locked"
        assert f"pid {os.getpid()}" in outcome.problem.message

    def test_cancel_stops_backup(self, setup: BackupSetup) -> None:
        """A cancelled worker stops the backup at its next callback, and no snapshot is written."""
        backups = LocalBackups(setup.config, setup.data_dir)
        outcome = backups.run_job(JobRequest(kind="backup"), NOW, lambda p: None, lambda: True)
        assert outcome.status == "cancelled"
        assert Repository.open(setup.repository, PASSPHRASE).snapshot_ids() == []

    def test_cancel_stops_verify(self, setup: BackupSetup) -> None:
        """A cancelled verify ends as cancelled, not as a failed check."""
        backups = LocalBackups(setup.config, setup.data_dir)
        snapshot_id = _backup(backups)
        request = JobRequest(kind="verify", snapshot_id=snapshot_id)
        outcome = backups.run_job(request, NOW, lambda p: None, lambda: True)
        assert outcome.status == "cancelled"
        assert outcome.verify is None

    def test_job_without_passphrase(self, setup: BackupSetup) -> None:
        """A job without a passphrase fails with the same text as the read."""
        backups = LocalBackups(without_passphrase(setup), setup.data_dir)
        outcome = backups.run_job(JobRequest(kind="backup"), NOW, lambda p: None, _never_cancelled)
        assert outcome.problem is not None and outcome.problem.kind == "passphrase_missing"


class TestRemote:
    """`RemoteBackups` explains that backups are on the daemon host."""

    def test_read_and_job(self) -> None:
        """Reads and jobs both carry the `remote_only` note."""
        remote = RemoteBackups()
        read = remote.read(NOW)
        outcome = remote.run_job(JobRequest(kind="backup"), NOW, lambda p: None, _never_cancelled)
        assert read.problem is not None and read.problem.message == REMOTE_ONLY_TEXT
        assert outcome.problem is not None and outcome.problem.kind == "remote_only"


def _flip_byte_in_a_pack(repository: Path) -> str:
    opened = Repository.open(repository, PASSPHRASE)
    pack_id = opened.pack_ids()[0]
    path = pack_path(repository, pack_id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return pack_id
