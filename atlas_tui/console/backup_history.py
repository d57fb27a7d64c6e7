"""The store's backup run records and the schedule's next runs, as the Backups pane needs them.

`read_run_records` reads `storage.backup_runs` for one repository from the store in
the data directory, with a short-lived connection of its own because the pane reads
in its own worker thread. The records add what snapshots cannot show: runs still
running, failed runs (which write no snapshot) and the new data each run stored.
The next run of each set comes from the daemon's schedule (`BackupSchedule.plan`)
over the same records, so the pane and the daemon agree. A store without a file or
without the run table (written by an older atlas) gives None, and the pane works
from the snapshots alone.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from atlas_tui.backup.jobs import configured_sets
from atlas_tui.backup.schedule import BackupSchedule, ScheduleSettings, load_history
from atlas_tui.config import Config
from atlas_tui.console.backup_models import SetRow
from storage.backup_runs import BackupRun, last_runs_by_set, last_success_by_set, recent_runs
from storage.db import DB_FILENAME, connect
from storage.errors import StoreCorruptError, StoreOpenError

__all__ = ["NEW_DATA_RUNS", "RunRecords", "read_run_records"]

logger = logging.getLogger(__name__)

NEW_DATA_RUNS = 500
"""Backup run rows read for the snapshot list's new-data column (one row per set and run)."""


@dataclass(frozen=True, slots=True)
class RunRecords:
    """Facts that the run records of one repository add to its snapshots."""

    last_run: dict[str, BackupRun]
    """Newest backup run of each set, a running one included."""
    last_success: dict[str, BackupRun]
    """Newest `ok` backup run of each set."""
    new_bytes: dict[str, int]
    """Bytes each recent backup run added to the repository, by snapshot id."""
    next_run: dict[str, float | None]
    """Next scheduled backup of each configured set; None while one runs."""

    def apply(self, row: SetRow) -> SetRow:
        """Return `row` with a newer last run or last success from the records, and the next run."""
        update: dict[str, object] = {"next_run": self.next_run.get(row.name)}
        last = self.last_run.get(row.name)
        if last is not None and (row.last_run_time is None or last.started >= row.last_run_time):
            update["last_run_time"] = last.started
            update["last_status"] = last.status
        success = self.last_success.get(row.name)
        if success is not None and (row.last_success_time is None or success.started > row.last_success_time):
            update["last_success_time"] = success.started
        return row.model_copy(update=update)


def read_run_records(config: Config, data_dir: Path, repository: Path, now: float) -> RunRecords | None:
    """Read the run records of `repository` from the store in `data_dir`, and plan the schedule at `now`.

    Returns None when there is no store or it has no run table.
    """
    path = data_dir / DB_FILENAME
    if not path.is_file():
        return None
    try:
        conn = connect(path)
    except (StoreOpenError, StoreCorruptError) as err:
        logger.info("backup run records not read path=%s error=%s", path, err)
        return None
    try:
        return _read(conn, config, data_dir, str(repository), now)
    except sqlite3.Error as err:
        logger.info("backup run records not read path=%s error=%s", path, err)
        return None
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, config: Config, data_dir: Path, repository: str, now: float) -> RunRecords:
    settings = ScheduleSettings.from_config(config.backup, configured_sets(config.backup, data_dir))
    plan = BackupSchedule(settings).plan(load_history(conn, settings, repository), now)
    backups = recent_runs(conn, NEW_DATA_RUNS, "backup", repository=repository)
    return RunRecords(
        last_run=last_runs_by_set(conn, repository=repository),
        last_success=last_success_by_set(conn, repository=repository),
        new_bytes={run.snapshot_id: run.bytes_new for run in reversed(backups) if run.snapshot_id is not None},
        next_run={item.name: item.next_run for item in plan.sets},
    )
