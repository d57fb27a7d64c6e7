"""The Backups pane's display models, without a terminal: columns, rows, summary, progress and results."""

from __future__ import annotations

import pytest

from atlas_tui.backup.models import BackupResult, DamagedPack, IntegrityResult, SkippedPath, VerifyResult
from atlas_tui.console.backup_models import (
    BackupProblem,
    BackupsRead,
    JobOutcome,
    JobProgress,
    JobRequest,
    SetRow,
    SnapshotRow,
)
from atlas_tui.console.backup_presentation import (
    SNAPSHOT_ID_WIDTH,
    compact_bytes,
    job_title,
    outcome_lines,
    problem_line,
    progress_view,
    set_columns,
    set_row_views,
    snapshot_columns,
    snapshot_row_views,
    summary_line,
)

NOW = 1_750_000_000.0
CELL_PADDING = 2


def _read(**fields: object) -> BackupsRead:
    values: dict[str, object] = {"now": NOW, "repository": "/var/backups/atlas", "data_dir": "/var/lib/atlas"}
    values.update(fields)
    return BackupsRead.model_validate(values)


def _snapshot(snapshot_id: str = "backup_1749990000_scheduled", **fields: object) -> SnapshotRow:
    values: dict[str, object] = {
        "id": snapshot_id, "time": 1_749_990_000.0, "trigger": "scheduled", "status": "ok",
        "files": 1234, "size_bytes": 5 * 1024**3, "new_bytes": 3 * 1024**2,
    }
    values.update(fields)
    return SnapshotRow.model_validate(values)


class TestColumns:
    """Column sets fit the pane width."""

    @pytest.mark.parametrize("width", [78, 90, 120, 158])
    def test_snapshot_columns_fit(self, width: int) -> None:
        """Every snapshot column set fits its width and keeps the full id."""
        columns = snapshot_columns(width)
        assert sum(column.width + CELL_PADDING for column in columns) <= width
        assert columns[0].key == "id"
        assert columns[0].width == SNAPSHOT_ID_WIDTH

    def test_trigger_only_when_room(self) -> None:
        """At 80 columns the trigger column is left out; at 120 it is shown."""
        assert "trigger" not in [column.key for column in snapshot_columns(78)]
        assert "trigger" in [column.key for column in snapshot_columns(118)]

    @pytest.mark.parametrize("width", [78, 158])
    def test_set_columns_fit(self, width: int) -> None:
        """The sets table fits at 80 columns and caps the name column on wide panes."""
        columns = set_columns(width)
        assert sum(column.width + CELL_PADDING for column in columns) <= width


class TestRows:
    """Cell texts of both tables."""

    def test_snapshot_row_narrow(self) -> None:
        """At 80 columns a row has the id, UTC time, status, files and short sizes."""
        columns = snapshot_columns(78)
        (view,) = snapshot_row_views(_read(snapshots=(_snapshot(),)), columns)
        cells = dict(zip([column.key for column in columns], view.cells, strict=True))
        assert cells == {
            "id": "backup_1749990000_scheduled", "time": "06-15 12:20", "status": "ok",
            "files": "1,234", "size": "5.0G", "new": "3.0M",
        }
        assert view.status == "ok"

    def test_snapshot_without_run_record(self) -> None:
        """A snapshot without a run record shows `—` for new data."""
        columns = snapshot_columns(158)
        (view,) = snapshot_row_views(_read(snapshots=(_snapshot(new_bytes=None, status="partial"),)), columns)
        cells = dict(zip([column.key for column in columns], view.cells, strict=True))
        assert cells["new"] == "—"
        assert cells["size"] == "5.0 GiB"
        assert cells["trigger"] == "scheduled"
        assert view.status == "warning"

    def test_set_row_failed(self) -> None:
        """A failed set shows its age, red status, next run and the age of its last success."""
        row = SetRow(name="node", last_run_time=NOW - 600, last_status="failed", size_bytes=2048,
                     last_success_time=NOW - 86400, next_run=NOW + 3600)
        columns = set_columns(78)
        (view,) = set_row_views(_read(sets=(row,)), columns)
        assert view.cells[1:] == ("10m 0s ago", "failed", "2.0 KiB", "in 1h 0m", "1d 0h ago")
        assert view.status == "critical"

    def test_set_never_run_vs_unknown(self) -> None:
        """A set that never ran shows `never` when the repository was read and `—` when it was not."""
        columns = set_columns(78)
        read = _read(sets=(SetRow(name="node"),))
        unreadable = _read(sets=(SetRow(name="node"),), problem=BackupProblem(kind="wrong_passphrase", message="x"))
        assert set_row_views(read, columns)[0].cells[2] == "never"
        assert set_row_views(unreadable, columns)[0].cells[2] == "—"

    def test_overdue_set_is_due_now(self) -> None:
        """A next run in the past reads `due now`."""
        row = SetRow(name="node", last_run_time=NOW - 90000, last_status="ok", next_run=NOW - 3600)
        (view,) = set_row_views(_read(sets=(row,)), set_columns(78))
        assert view.cells[4] == "due now"


class TestSummary:
    """The line above the tables and the problem notice."""

    def test_repository_in_data_dir(self) -> None:
        """A repository inside the data directory is named relative to it."""
        line = summary_line(_read(repository="/var/lib/atlas/backups", repository_bytes=3 * 1024**2))
        assert line.text == "Repository backups in the data directory · 0 snapshots · 3.0 MiB"

    def test_repository_elsewhere(self) -> None:
        """Another repository is named by its path, with the snapshot count."""
        line = summary_line(_read(snapshots=(_snapshot(),)))
        assert line.text == "Repository /var/backups/atlas · 1 snapshot"

    def test_problem_colours(self) -> None:
        """Setup problems are warnings; a wrong passphrase or a lock is critical; no problem gives None."""
        assert problem_line(None) is None
        missing = problem_line(BackupProblem(kind="passphrase_missing", message="set it"))
        locked = problem_line(BackupProblem(kind="locked", message="pid 3"))
        assert missing is not None and missing.status == "warning"
        assert locked is not None and locked.status == "critical"


class TestProgress:
    """The activity line while a job runs."""

    def test_backup_has_no_bar(self) -> None:
        """A backup shows entries, bytes and rate, and no bar because its total is unknown."""
        progress = JobProgress(request=JobRequest(kind="backup"), elapsed=2.0, items_done=1204, bytes_done=8 * 1024**2)
        view = progress_view(progress)
        assert view.text == "Backup: 1,204 entries · 8.0 MiB read · 4.0 MiB/s · 2s"
        assert view.total is None

    def test_verify_bar_by_bytes(self) -> None:
        """A verify fills its bar by bytes against the known total."""
        request = JobRequest(kind="verify", snapshot_id="backup_1_manual")
        view = progress_view(JobProgress(request=request, elapsed=1.0, items_done=3, items_total=10,
                                         bytes_done=512, bytes_total=2048))
        assert view.text.startswith("Verify backup_1_manual: 3 entries · 512 B done")
        assert (view.total, view.done) == (2048.0, 512.0)

    def test_integrity_bar_by_packs(self) -> None:
        """An integrity check counts packs."""
        request = JobRequest(kind="integrity", snapshot_id="backup_1_manual")
        view = progress_view(JobProgress(request=request, elapsed=1.0, items_done=2, items_total=5, unit="packs"))
        assert view.text == "Integrity check of backup_1_manual: 2 of 5 packs · 1s"
        assert (view.total, view.done) == (5.0, 2.0)


class TestOutcome:
    """The result lines of a finished job."""

    def test_backup_partial_lists_skips(self) -> None:
        """A partial backup is a warning with each skipped path."""
        result = BackupResult(id="backup_1_manual", status="partial", files=3, files_read=1, bytes=4096,
                              new_bytes_stored=1024, skipped=[SkippedPath(path="/srv/x", reason="Permission denied")])
        outcome = JobOutcome(request=JobRequest(kind="backup"), status="partial", elapsed=1.25, backup=result)
        lines = outcome_lines(outcome)
        assert lines[0].text == "Backup backup_1_manual partial: 3 files (1 read), 4.0 KiB, 1.0 KiB new, in 1.2s"
        assert lines[0].status == "warning"
        assert lines[1].text == "skipped /srv/x: Permission denied"

    def test_backup_failed_without_snapshot(self) -> None:
        """A backup that read nothing reports that no snapshot was written."""
        result = BackupResult(id=None, status="failed")
        outcome = JobOutcome(request=JobRequest(kind="backup"), status="failed", elapsed=0.5, backup=result)
        lines = outcome_lines(outcome)
        assert "no snapshot was written" in lines[0].text
        assert lines[0].status == "critical"

    def test_verify_mismatches_cut(self) -> None:
        """Many mismatches are cut to the line limit with a count of the rest."""
        result = VerifyResult(id="backup_1_manual", status="failed", checked=9,
                              mismatches=[f"/f{index}: content hash differs" for index in range(6)])
        request = JobRequest(kind="verify", snapshot_id="backup_1_manual")
        lines = outcome_lines(JobOutcome(request=request, status="failed", elapsed=12.0, verify=result), limit=4)
        assert len(lines) == 4
        assert lines[1].text == "mismatch: /f0: content hash differs"
        assert lines[3].text.startswith("… 4 more lines")

    def test_integrity_damage(self) -> None:
        """A damaged pack names the pack, the reason and the affected snapshots, then the advice."""
        result = IntegrityResult(snapshots=["backup_1_manual"], packs=2, chunks=10, damaged=[
            DamagedPack(pack="ab12", reason="content hash does not match the pack name", snapshots=["backup_1_manual"])
        ])
        request = JobRequest(kind="integrity", snapshot_id="backup_1_manual")
        lines = outcome_lines(JobOutcome(request=request, status="failed", elapsed=0.2, integrity=result))
        assert lines[0].text.startswith("Integrity check of backup_1_manual failed: 10 chunks in 2 packs")
        assert lines[1].text == (
            "damaged pack ab12: content hash does not match the pack name; snapshots backup_1_manual"
        )
        assert "another copy of the repository" in lines[2].text

    def test_problem_and_cancel(self) -> None:
        """A problem is one red line; a cancelled job a warning."""
        request = JobRequest(kind="verify", snapshot_id="backup_1_manual")
        problem = BackupProblem(kind="locked", message="locked by pid 9")
        failed = outcome_lines(JobOutcome(request=request, status="failed", elapsed=0.0, problem=problem))
        cancelled = outcome_lines(JobOutcome(request=request, status="cancelled", elapsed=3.0))
        assert failed[0].text == "Verify backup_1_manual failed: locked by pid 9"
        assert cancelled[0].text == "Verify backup_1_manual cancelled after 3.0s"
        assert cancelled[0].status == "warning"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0B"), (1023, "1023B"), (1536, "1.5K"),
        (38 * 1024**2, "38M"), (1023 * 1024**2, "1023M"), (2 * 1024**3, "2.0G"),
    ],
)
def test_compact_bytes(value: int, text: str) -> None:
    """Short sizes stay within 5 cells."""
    assert compact_bytes(value) == text
    assert len(text) <= 5


def test_job_titles() -> None:
    """Titles name the job and its snapshot."""
    assert job_title(JobRequest(kind="backup")) == "Backup"
    assert job_title(JobRequest(kind="verify", snapshot_id="s")) == "Verify s"
    assert job_title(JobRequest(kind="integrity", snapshot_id="s")) == "Integrity check of s"
