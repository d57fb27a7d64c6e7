"""Backup, cleanup and check jobs that record each run in the store.

`backup-manager` (`atlas_tui.cli_backup`) and the schedule (`atlas_tui.backup.service`)
call these instead of the engine classes directly, so a run looks the same in
`backup-manager logs`, in the metrics and in the console, whether a person or the schedule started it. A
`RunRecorder` writes the rows of `storage.backup_runs`. Without a store it records
nothing and the job still runs, because a backup must not fail for a
monitoring problem.

Invariants: a job that finds the repository locked deletes its run rows again, so
a locked repository never counts as a failed run. A job that fails after its rows
exist marks them failed with the error and re-raises. The caller passes `now` (the
start); the recorder's clock gives the finish time.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from atlas_tui.backup.config import BackupConfig
from atlas_tui.backup.errors import BackupError, BackupInterrupted, RepositoryLocked, RunCancelled, WrongPassphrase
from atlas_tui.backup.models import BackupSetSpec, RetentionPolicy
from storage.backup_runs import LogLevel, LogLine, RunKind, RunTrigger, discard_run, finish_run, start_run
from storage.db import open_store
from storage.errors import StorageError

if TYPE_CHECKING:
    from atlas_tui.backup.archiver import ProgressCallback
    from atlas_tui.backup.models import BackupRequest, BackupResult, CleanupResult, IntegrityResult, Snapshot
    from atlas_tui.backup.models import VerifyResult
    from atlas_tui.backup.repository import Repository

__all__ = [
    "MAX_LOGGED_PATHS",
    "REPOSITORY_DIRNAME",
    "RunRecorder",
    "backup_job",
    "check_job",
    "cleanup_job",
    "configured_sets",
    "repository_path",
    "retention_policy",
    "verify_job",
]

REPOSITORY_DIRNAME = "backups"
"""Repository directory inside the data directory when `backup.repository` is unset."""

DEFAULT_SET_NAME = "data"
"""Name of the set that backs up the data directory when the config lists no sets."""

MAX_LOGGED_PATHS = 50
"""Skipped paths or mismatches stored per run; one more line gives the count of the rest."""

logger = logging.getLogger(__name__)

FinishedState = Literal["ok", "partial", "failed"]


def repository_path(backup: BackupConfig, data_dir: Path) -> Path:
    """Return `backup.repository`, else `backups` in the data directory."""
    if backup.repository:
        return Path(backup.repository).expanduser()
    return data_dir / REPOSITORY_DIRNAME


def configured_sets(backup: BackupConfig, data_dir: Path) -> list[BackupSetSpec]:
    """Return the config's backup sets, else one set `data` with the data directory and its databases."""
    if backup.sets:
        return [
            BackupSetSpec(name=item.name, paths=[Path(p) for p in item.paths], sqlite=item.sqlite, priority=item.priority)
            for item in backup.sets
        ]
    return [BackupSetSpec(name=DEFAULT_SET_NAME, paths=[data_dir], sqlite=True)]


def retention_policy(backup: BackupConfig) -> RetentionPolicy:
    """Return the retention rules of `cleanup` from the `backup` config section."""
    return RetentionPolicy(
        period=backup.retention_period, keep_daily=backup.keep_daily or 0,
        keep_weekly=backup.keep_weekly or 0, keep_monthly=backup.keep_monthly or 0,
    )


class RunRecorder:
    """Writes run rows for one repository; a recorder without a connection records nothing.

    A SQLite error while recording is logged, not raised, so the job goes on.
    """

    def __init__(
        self, conn: sqlite3.Connection | None, *, repository: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self.conn = conn
        self.repository = str(repository)
        self.clock = clock
        self._active: set[int] = set()
        self._active_lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path, *, repository: Path, clock: Callable[[], float] = time.time) -> RunRecorder:
        """Open the store in `data_dir` for recording; on failure log a warning and record nothing."""
        try:
            conn = open_store(data_dir)
        except (StorageError, sqlite3.Error, OSError) as err:
            logger.warning("backup runs not recorded data_dir=%s: %s", data_dir, err)
            return cls(None, repository=repository, clock=clock)
        return cls(conn, repository=repository, clock=clock)

    def start(
        self, kind: RunKind, trigger: RunTrigger, now: float, *, set_name: str | None = None,
        snapshot_id: str | None = None,
    ) -> int | None:
        """Store a `running` row and return its id, or None when nothing is recorded."""
        if self.conn is None:
            return None
        try:
            run_id = start_run(
                self.conn, kind=kind, trigger=trigger, now=now, set_name=set_name, snapshot_id=snapshot_id,
                repository=self.repository,
            )
        except sqlite3.Error as err:
            logger.warning("backup run not recorded kind=%s set=%s: %s", kind, set_name, err)
            return None
        with self._active_lock:
            self._active.add(run_id)
        return run_id

    def finish(
        self, run_id: int | None, status: FinishedState, *, log: Sequence[LogLine] = (), **fields: object
    ) -> None:
        """Store the outcome of the run `run_id` (ignored when None)."""
        if self.conn is None or run_id is None:
            return
        self._forget(run_id)
        try:
            finish_run(self.conn, run_id, status=status, now=self.clock(), log=log, **fields)  # type: ignore[arg-type]
        except sqlite3.Error as err:
            logger.warning("backup run outcome not recorded run_id=%d status=%s: %s", run_id, status, err)

    def discard(self, run_id: int | None) -> None:
        """Delete the row of a run that did no work."""
        if self.conn is None or run_id is None:
            return
        self._forget(run_id)
        try:
            discard_run(self.conn, run_id)
        except sqlite3.Error as err:
            logger.warning("backup run row not deleted run_id=%d: %s", run_id, err)

    def fail(self, run_ids: Sequence[int | None], error: BaseException | str) -> None:
        """Mark runs failed with `error` as their message and one error line in their log."""
        message = _error_text(error)
        line = LogLine(ts=self.clock(), level="error", message=message)
        for run_id in run_ids:
            self.finish(run_id, "failed", error=message, log=[line])

    def active_ids(self) -> list[int]:
        """Return the ids of the runs started and not yet finished; any thread may call it."""
        with self._active_lock:
            return sorted(self._active)

    def close(self) -> None:
        """Close the store connection, if any."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _forget(self, run_id: int) -> None:
        with self._active_lock:
            self._active.discard(run_id)


def backup_job(
    repository: Repository,
    request: BackupRequest,
    recorder: RunRecorder,
    *,
    progress: ProgressCallback | None = None,
) -> BackupResult:
    """Run one backup of the request's sets and record one row per set.

    Raises:
        RepositoryLocked: another live process holds the lock; no row stays behind.
        WrongPassphrase: the repository was opened in the background with a wrong
            passphrase; no row stays behind.
        RunCancelled: `progress` stopped the run; the rows are failed.
        BackupInterrupted: a signal stopped the run; the rows are failed as interrupted.
        BackupError, OSError: the run failed; the rows are failed with the error.
    """
    from atlas_tui.backup.archiver import Archiver

    ordered = sorted(request.sets, key=lambda spec: -spec.priority)
    run_ids = {
        spec.name: recorder.start("backup", request.trigger, request.now, set_name=spec.name) for spec in ordered
    }
    try:
        result = Archiver(repository, progress=progress).run(request)
    except (RepositoryLocked, WrongPassphrase):
        # A repository opened in the background reports a wrong passphrase only now.
        for run_id in run_ids.values():
            recorder.discard(run_id)
        raise
    except (BackupError, OSError, BackupInterrupted) as err:
        recorder.fail(list(run_ids.values()), err)
        raise
    for item in result.sets:
        recorder.finish(
            run_ids.get(item.name), item.status, snapshot_id=result.id, files=item.files, bytes=item.bytes,
            bytes_read=result.bytes_read, bytes_new=result.new_bytes_stored,
            error=_set_error(item.status, len(item.skipped)), log=_backup_log(result, item.name, recorder.clock()),
        )
    return result


def cleanup_job(
    repository: Repository,
    policy: RetentionPolicy,
    recorder: RunRecorder,
    *,
    trigger: RunTrigger,
    now: float,
    dry_run: bool = False,
) -> CleanupResult:
    """Apply retention and prune; record the run unless `dry_run`.

    Raises:
        RepositoryLocked: another live process holds the lock; no row stays behind.
        BackupError, OSError: the cleanup failed; the row is failed with the error.
    """
    from atlas_tui.backup.pruner import Pruner

    run_id = None if dry_run else recorder.start("cleanup", trigger, now)
    try:
        result = Pruner(repository).cleanup(policy, now=now, dry_run=dry_run)
    except RepositoryLocked:
        recorder.discard(run_id)
        raise
    except (BackupError, OSError) as err:
        recorder.fail([run_id], err)
        raise
    summary = (
        f"cleanup removed {len(result.removed_snapshots)} snapshots, deleted {len(result.deleted_packs)} packs, "
        f"rewrote {len(result.rewritten_packs)} packs, freed {result.freed_bytes} bytes"
    )
    log = [LogLine(ts=recorder.clock(), level="info", message=summary)]
    log += [LogLine(ts=recorder.clock(), level="debug", message=f"removed snapshot {item}")
            for item in result.removed_snapshots]
    recorder.finish(run_id, "ok", bytes=result.freed_bytes, log=log)
    return result


def verify_job(
    repository: Repository,
    snapshot: Snapshot,
    recorder: RunRecorder,
    *,
    kind: RunKind,
    trigger: RunTrigger,
    now: float,
    locked: bool,
    progress: ProgressCallback | None = None,
) -> VerifyResult:
    """Test-restore `snapshot` into a temporary directory, compare it and record the run as `kind`.

    Args:
        kind: `verify` for a check started by hand, `test_restore` for the schedule's.
        locked: Hold the repository lock during the check, so a cleanup cannot
            delete packs under it. The schedule sets it.
        progress: See `verify_snapshot`. An exception it raises stops the check, and the
            row is failed with it.

    Raises:
        RepositoryLocked: `locked` and another live process holds the lock; no row stays behind.
        BackupError, OSError: the check could not run; the row is failed with the error.
    """
    from atlas_tui.backup.checker import verify_snapshot

    run_id = recorder.start(kind, trigger, now, snapshot_id=snapshot.id)
    try:
        if locked:
            with repository.lock(now=now):
                result = verify_snapshot(repository, snapshot, progress=progress)
        else:
            result = verify_snapshot(repository, snapshot, progress=progress)
    except RepositoryLocked:
        recorder.discard(run_id)
        raise
    except BaseException as err:
        # Also a cancelled progress callback, so that no row stays `running`.
        recorder.fail([run_id], err)
        raise
    at = recorder.clock()
    log = [LogLine(ts=at, level="info", message=f"test restore of {snapshot.id}: {result.status}, "
                   f"{result.checked} entries compared")]
    log += _capped(at, "error", result.mismatches, "mismatch")
    log += [LogLine(ts=at, level="debug", message=note) for note in result.notes]
    error = f"{len(result.mismatches)} entries differ from the snapshot" if result.mismatches else None
    recorder.finish(run_id, result.status, files=result.checked, error=error, log=log)
    return result


def check_job(
    repository: Repository,
    snapshot_ids: list[str],
    recorder: RunRecorder,
    *,
    trigger: RunTrigger,
    now: float,
    progress: Callable[[int, int], None] | None = None,
) -> IntegrityResult:
    """Read and authenticate every chunk of the snapshots and record one `integrity` run.

    Args:
        progress: See `check_integrity`. An exception it raises stops the check, and the
            row is failed with it.

    Raises:
        BackupError, OSError: the check could not run; the row is failed with the error.
    """
    from atlas_tui.backup.checker import check_integrity

    single = snapshot_ids[0] if len(snapshot_ids) == 1 else None
    run_id = recorder.start("integrity", trigger, now, snapshot_id=single)
    try:
        result = check_integrity(repository, snapshot_ids, progress=progress)
    except BaseException as err:
        # Also a cancelled progress callback, so that no row stays `running`.
        recorder.fail([run_id], err)
        raise
    at = recorder.clock()
    log = [LogLine(ts=at, level="info", message=f"integrity: {result.chunks} chunks in {result.packs} packs of "
                   f"{len(snapshot_ids)} snapshots checked")]
    for damage in result.damaged[:MAX_LOGGED_PATHS]:
        affected = ", ".join(damage.snapshots) or "-"
        log.append(LogLine(ts=at, level="error", message=f"damaged pack {damage.pack}: {damage.reason}; "
                           f"snapshots affected: {affected}"))
    error = f"{len(result.damaged)} damaged packs" if result.damaged else None
    recorder.finish(run_id, "ok" if result.ok else "failed", error=error, log=log)
    return result


def _backup_log(result: BackupResult, set_name: str, at: float) -> list[LogLine]:
    item = next(entry for entry in result.sets if entry.name == set_name)
    snapshot = result.id or "no snapshot"
    lines = [LogLine(ts=at, level="info", message=(
        f"backup of set {set_name} into {snapshot}: {item.status}, {item.files} files, {item.bytes} bytes"
    ))]
    lines.append(LogLine(ts=at, level="debug", message=(
        f"run read {result.files_read} of {result.files} files ({result.bytes_read} bytes) and stored "
        f"{result.new_chunks} new chunks ({result.new_bytes_stored} bytes) in {result.duration:.1f} s"
    )))
    lines += _capped(at, "warning", [f"skipped {path.path}: {path.reason}" for path in item.skipped], "skipped path")
    vanished = result.vanished_by_set.get(set_name, 0)
    if vanished:
        lines.append(LogLine(ts=at, level="info", message=(
            f"{vanished} paths of set {set_name} were deleted during the backup and are not in the snapshot; "
            "they are not failures"
        )))
        listed = [path.path for path in result.vanished_paths if path.backup_set == set_name]
        lines += _capped(at, "debug", [f"vanished {path}" for path in listed], "vanished path")
    lines += [LogLine(ts=at, level="warning", message=text) for text in result.warnings if f"set {set_name} " in text]
    return lines


def _capped(at: float, level: LogLevel, messages: Sequence[str], noun: str) -> list[LogLine]:
    lines = [LogLine(ts=at, level=level, message=text) for text in messages[:MAX_LOGGED_PATHS]]
    rest = len(messages) - MAX_LOGGED_PATHS
    if rest > 0:
        lines.append(LogLine(ts=at, level=level, message=f"{rest} more {noun} lines not stored"))
    return lines


def _set_error(status: FinishedState, skipped: int) -> str | None:
    if status == "ok":
        return None
    if status == "partial":
        return f"{skipped} paths could not be read"
    return f"nothing readable: {skipped} paths could not be read"


def _error_text(error: BaseException | str) -> str:
    if isinstance(error, RunCancelled):
        return f"cancelled: {error}"
    if isinstance(error, BackupInterrupted):
        return f"{error} before the run finished"
    if isinstance(error, BaseException):
        return str(error) or type(error).__name__
    return error
