"""`LocalBackups`: the Backups pane's data and jobs on the daemon host, from the repository and the store.

The pane calls `read` and `run_job` from Textual thread workers, never from the UI
thread. `read` opens the repository with the passphrase, lists its snapshots and
measures it, then adds the store's backup run records (`console.backup_history`).
`run_job` runs a backup, a verify or an integrity check through `jobs.backup_job`,
`jobs.verify_job` and `jobs.check_job`, as `backup-manager` does, and reports
progress through the engine's callbacks. Each is recorded in the store like one
from `backup-manager` or the schedule. Invariants:

- The repository and the sets come from the config as in `atlas backup`
  (`jobs.repository_path`, `jobs.configured_sets`).
- The passphrase comes from the variable named by `backup.passphrase_env`, else from
  `backup.passphrase_file`. The console never prompts, because a prompt would fight
  the TUI for the terminal. Without a passphrase the pane shows what to set.
- Snapshot manifests never change once written, so their summaries are cached by
  repository id and snapshot id, and a read decrypts only manifests it has not seen.
- Every failure the user can fix becomes a `BackupProblem`; only a bug raises.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from atlas_tui.backup.config import BackupConfig
from atlas_tui.backup.errors import (
    BackupError,
    CorruptData,
    PassphraseMissing,
    RepositoryLocked,
    RepositoryNotFound,
    RunCancelled,
    SnapshotNotFound,
    WrongPassphrase,
)
from atlas_tui.backup.jobs import RunRecorder, backup_job, check_job, configured_sets, repository_path, verify_job
from atlas_tui.backup.models import BackupRequest, RunStatus, SnapshotSummary
from atlas_tui.backup.passphrase import read_passphrase
from atlas_tui.config import Config
from atlas_tui.console.backup_history import RunRecords, read_run_records
from atlas_tui.console.backup_models import (
    BackupProblem,
    BackupsRead,
    JobOutcome,
    JobProgress,
    JobRequest,
    JobStatus,
    ProblemKind,
    ProgressReport,
    SetRow,
    SnapshotRow,
)

if TYPE_CHECKING:
    from atlas_tui.backup.repository import Repository

__all__ = ["PROGRESS_INTERVAL", "LocalBackups", "console_passphrase", "problem_for"]

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.2
"""Minimum seconds between two progress reports of a job; the engine calls back per chunk."""


def console_passphrase(backup: BackupConfig) -> bytes:
    """Return the passphrase from the environment or `backup.passphrase_file`, never from a prompt.

    Raises:
        PassphraseMissing: neither source is set, or the file is unreadable or empty.
    """
    if not os.environ.get(backup.passphrase_env) and not backup.passphrase_file:
        raise PassphraseMissing(
            f"no backup passphrase: start the console with the environment variable {backup.passphrase_env} "
            "set, or set `backup.passphrase_file` in the config"
        )
    # With one of the two sources set, read_passphrase returns or raises before its prompt.
    return read_passphrase(backup, None)


def _damaged_problem(damaged: list[tuple[str, str]]) -> BackupProblem:
    """Return the pane's notice for snapshot files that cannot be read, naming the first and the fix."""
    snapshot_id, reason = damaged[0]
    others = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
    return BackupProblem(
        kind="damaged",
        message=(
            f"snapshot {snapshot_id}{others} cannot be read ({reason}); the list shows the others. "
            f"Run `backup-manager integrity`, and `backup-manager delete --id {snapshot_id}` removes it"
        ),
    )


def problem_for(err: BackupError | OSError) -> BackupProblem:
    """Return the pane's text for an engine or file system error."""
    kind: ProblemKind = "failed"
    if isinstance(err, RepositoryNotFound):
        kind = "repository_missing"
    elif isinstance(err, PassphraseMissing):
        kind = "passphrase_missing"
    elif isinstance(err, WrongPassphrase):
        kind = "wrong_passphrase"
    elif isinstance(err, RepositoryLocked):
        kind = "locked"
    elif isinstance(err, CorruptData):
        kind = "damaged"
    elif isinstance(err, SnapshotNotFound):
        kind = "snapshot_missing"
    message = str(err) if isinstance(err, BackupError) else f"{err.strerror or err}: {err.filename or ''}".rstrip(": ")
    return BackupProblem(kind=kind, message=message)


class LocalBackups:
    """Reads the repository and the run records of this host and runs jobs on the repository.

    Args:
        config: The loaded config; its `backup` section names the repository, the
            passphrase source, the sets and the frequency.
        data_dir: The data directory: the default repository's parent and the store's home.
        monotonic: Clock for job durations and progress pacing.
    """

    def __init__(self, config: Config, data_dir: Path, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._data_dir = Path(data_dir)
        self._monotonic = monotonic
        self._summaries: dict[tuple[str, str], SnapshotSummary] = {}
        self._read_lock = threading.Lock()

    @property
    def repository(self) -> Path:
        """The repository directory."""
        return repository_path(self._config.backup, self._data_dir)

    def read(self, now: float) -> BackupsRead:
        """Read the snapshots, the repository size and the run records; failures become the read's problem."""
        with self._read_lock:
            return self._read(now)

    def run_job(
        self, request: JobRequest, now: float, report: ProgressReport, is_cancelled: Callable[[], bool]
    ) -> JobOutcome:
        """Run a backup, verify or integrity check and return its outcome (see `BackupSource.run_job`)."""
        pacer = _ProgressPacer(request, report, is_cancelled, self._monotonic)
        logger.info("console backup job started kind=%s snapshot=%s", request.kind, request.snapshot_id)
        try:
            outcome = self._run(request, now, pacer)
        except (RunCancelled, _CheckCancelled):
            logger.info("console backup job cancelled kind=%s snapshot=%s", request.kind, request.snapshot_id)
            return JobOutcome(request=request, status="cancelled", elapsed=pacer.elapsed())
        except (BackupError, OSError) as err:
            problem = problem_for(err)
            logger.warning(
                "console backup job failed kind=%s snapshot=%s problem=%s error=%s",
                request.kind, request.snapshot_id, problem.kind, err,
            )
            return JobOutcome(request=request, status="failed", elapsed=pacer.elapsed(), problem=problem)
        logger.info(
            "console backup job finished kind=%s snapshot=%s status=%s",
            request.kind, request.snapshot_id, outcome.status,
        )
        return outcome

    def _read(self, now: float) -> BackupsRead:
        path = self.repository
        summaries: list[SnapshotSummary] = []
        problem: BackupProblem | None = None
        size: int | None = None
        try:
            repository = self._open()
            summaries, damaged = self._load_summaries(repository)
            size = repository.size_bytes()
            if damaged:
                problem = _damaged_problem(damaged)
        except (BackupError, OSError) as err:
            problem = problem_for(err)
            logger.info("backups read failed repository=%s problem=%s", path, problem.kind)
            size = _directory_bytes(path)
        records = read_run_records(self._config, self._data_dir, path, now)
        return BackupsRead(
            now=now,
            repository=str(path),
            data_dir=str(self._data_dir),
            repository_bytes=size,
            snapshots=tuple(_snapshot_rows(summaries, records)),
            sets=tuple(self._set_rows(summaries, records)),
            problem=problem,
            runs_recorded=records is not None,
        )

    def _open(self) -> Repository:
        # The engine loads cryptography, zstandard and the compiled chunker, so the
        # console imports it on the first read, in a worker thread, not at start.
        from atlas_tui.backup.repository import Repository

        return Repository.open(self.repository, console_passphrase(self._config.backup))

    def _load_summaries(self, repository: Repository) -> tuple[list[SnapshotSummary], list[tuple[str, str]]]:
        """Return every readable snapshot's summary, oldest first, and the id and error of each damaged one.

        Only manifests not cached yet are decrypted, without their entries.
        """
        repository_id = repository.config.id
        ids = repository.snapshot_ids()
        present = {(repository_id, snapshot_id) for snapshot_id in ids}
        for key in [key for key in self._summaries if key not in present]:
            del self._summaries[key]
        summaries = []
        damaged = []
        for snapshot_id in ids:
            key = (repository_id, snapshot_id)
            if key not in self._summaries:
                try:
                    self._summaries[key] = repository.load_snapshot(snapshot_id, entries=False).summary()
                except CorruptData as err:
                    logger.warning("console cannot read snapshot id=%s repository=%s error=%s", snapshot_id, repository.path, err)
                    damaged.append((snapshot_id, str(err)))
                    continue
            summaries.append(self._summaries[key])
        return summaries, damaged

    def _set_rows(self, summaries: list[SnapshotSummary], records: RunRecords | None) -> list[SetRow]:
        configured = sorted(configured_sets(self._config.backup, self._data_dir), key=lambda s: (-s.priority, s.name))
        rows = {spec.name: SetRow(name=spec.name) for spec in configured}
        for summary in summaries:
            for item in summary.sets:
                row = rows.get(item.name) or SetRow(name=item.name, configured=False)
                rows[item.name] = _after_snapshot(row, summary, item.status, item.bytes)
        if records is None:
            return list(rows.values())
        for name in sorted(set(records.last_run) - set(rows)):
            rows[name] = SetRow(name=name, configured=False)
        return [records.apply(row) for row in rows.values()]

    def _run(self, request: JobRequest, now: float, pacer: _ProgressPacer) -> JobOutcome:
        repository = self._open()
        if request.kind == "backup":
            return self._backup(repository, request, now, pacer)
        recorder = RunRecorder.open(self._data_dir, repository=repository.path)
        try:
            if request.kind == "verify":
                return self._verify(repository, request, now, pacer, recorder)
            return self._integrity(repository, request, now, pacer, recorder)
        finally:
            recorder.close()

    def _backup(self, repository: Repository, request: JobRequest, now: float, pacer: _ProgressPacer) -> JobOutcome:
        sets = configured_sets(self._config.backup, self._data_dir)
        recorder = RunRecorder.open(self._data_dir, repository=repository.path)
        try:
            result = backup_job(
                repository, BackupRequest(sets=sets, trigger="manual", now=now), recorder,
                progress=pacer.entries_and_bytes,
            )
        finally:
            recorder.close()
        return JobOutcome(request=request, status=result.status, elapsed=pacer.elapsed(), backup=result)

    def _verify(
        self, repository: Repository, request: JobRequest, now: float, pacer: _ProgressPacer, recorder: RunRecorder
    ) -> JobOutcome:
        snapshot = repository.load_snapshot(request.snapshot_id or "")
        non_links = sum(1 for entry in snapshot.entries if entry.type != "symlink")
        pacer.set_totals(items=non_links + len(snapshot.entries), size=2 * snapshot.bytes)
        result = verify_job(
            repository, snapshot, recorder, kind="verify", trigger="manual", now=now, locked=False,
            progress=pacer.entries_and_bytes,
        )
        return JobOutcome(request=request, status=result.status, elapsed=pacer.elapsed(), verify=result)

    def _integrity(
        self, repository: Repository, request: JobRequest, now: float, pacer: _ProgressPacer, recorder: RunRecorder
    ) -> JobOutcome:
        pacer.set_unit("packs")
        result = check_job(
            repository, [request.snapshot_id or ""], recorder, trigger="manual", now=now, progress=pacer.packs
        )
        status: JobStatus = "ok" if result.ok else "failed"
        return JobOutcome(request=request, status=status, elapsed=pacer.elapsed(), integrity=result)


class _CheckCancelled(Exception):
    """Raised inside a verify or integrity callback to stop a check whose worker was cancelled."""


class _ProgressPacer:
    """Turns the engine's per-chunk callbacks into at most one report per `PROGRESS_INTERVAL`."""

    def __init__(
        self,
        request: JobRequest,
        report: ProgressReport,
        is_cancelled: Callable[[], bool],
        monotonic: Callable[[], float],
    ) -> None:
        self._request = request
        self._report = report
        self._is_cancelled = is_cancelled
        self._monotonic = monotonic
        self._started = monotonic()
        self._reported_at: float | None = None
        self._progress = JobProgress(request=request, elapsed=0.0)

    def elapsed(self) -> float:
        """Return the seconds since the job started."""
        return self._monotonic() - self._started

    def set_totals(self, *, items: int | None, size: int | None) -> None:
        """Set what the job will process, for a progress bar."""
        self._progress = self._progress.model_copy(update={"items_total": items, "bytes_total": size})

    def set_unit(self, unit: str) -> None:
        """Set what the item count counts (`entries` or `packs`)."""
        self._progress = self._progress.model_copy(update={"unit": unit})

    def entries_and_bytes(self, entries: int, size: int) -> None:
        """Take an archiver, restore or verify callback: entries and bytes so far."""
        self._update(items_done=entries, bytes_done=size)

    def packs(self, done: int, total: int) -> None:
        """Take an integrity callback: packs checked and packs to check."""
        self._update(items_done=done, items_total=total)

    def _update(self, **fields: int) -> None:
        if self._is_cancelled():
            if self._request.kind == "backup":
                # backup_job marks the run's rows failed on this error and re-raises it.
                raise RunCancelled("backup stopped because the console quit")
            # Not a BackupError: verify_snapshot reports those as a failed check, not as a stop.
            raise _CheckCancelled(f"{self._request.kind} stopped because the console quit")
        now = self._monotonic()
        if self._reported_at is not None and now - self._reported_at < PROGRESS_INTERVAL:
            self._progress = self._progress.model_copy(update=fields)
            return
        self._reported_at = now
        self._progress = self._progress.model_copy(update={**fields, "elapsed": now - self._started})
        self._report(self._progress)


def _after_snapshot(row: SetRow, summary: SnapshotSummary, status: RunStatus, size: int) -> SetRow:
    """Return `row` updated with the set's result in `summary`, which is newer than any seen before."""
    update: dict[str, object] = {"last_run_time": summary.time, "last_status": status, "size_bytes": size}
    if status == "ok":
        update["last_success_time"] = summary.time
    return row.model_copy(update=update)


def _snapshot_rows(summaries: list[SnapshotSummary], records: RunRecords | None) -> list[SnapshotRow]:
    rows = [
        SnapshotRow(
            id=summary.id,
            time=summary.time,
            trigger=summary.trigger,
            status="ok" if summary.status == "ok" else "partial",
            files=summary.files,
            size_bytes=summary.bytes,
            new_bytes=records.new_bytes.get(summary.id) if records is not None else None,
            sets=tuple(item.name for item in summary.sets),
        )
        for summary in summaries
    ]
    return sorted(rows, key=lambda row: (row.time, row.id), reverse=True)


def _directory_bytes(path: Path) -> int | None:
    """Return the size of every file under `path`, or None when it is missing or unreadable."""
    if not path.is_dir():
        return None
    try:
        return sum(item.lstat().st_size for item in path.rglob("*") if item.is_file())
    except OSError as err:
        logger.info("cannot measure the backup repository path=%s error=%s", path, err)
        return None
