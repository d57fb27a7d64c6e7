"""The backup schedule loop that the daemon and `backup-manager schedule` run.

Each cycle, in a worker thread, reads the run records of the repository, gets the
due work from `BackupSchedule.plan` and writes the backup metrics
(`atlas_tui.backup.metrics`) to the store. When work is due and none runs, the
first due action starts in a dedicated one-thread executor, so a backup that takes
hours never blocks the event loop, the collectors, the alert engine or the API.
The loop wakes when the job ends, when more work becomes due, and at least every
`METRICS_INTERVAL`, so the age metric keeps moving during a long backup.

Invariants:

- Jobs take the repository lock like the CLI does (backup and cleanup in the
  engine, the test restore in `jobs.verify_job`). A lock held by another process
  (a manual run) is logged and retried after `LOCKED_RETRY` seconds. It is not
  recorded as a run and does not count as a failure.
- Due times come from the run records, so a restart neither repeats nor skips
  work. Rows left `running` by a killed process are marked failed at start.
- `stop()` cancels a backup at its next chunk (`RunCancelled`) and waits at most
  `STOP_GRACE` for the job. A job still running then (a test restore, a cleanup,
  a long database copy) is left to the process exit, and its rows are marked
  failed. The repository stays consistent because every file in it is written
  under a temporary name and renamed.
- Only `run()` reads the clock.

- `reconfigure` (the daemon's SIGHUP reload) replaces the sets, the schedule, the
  retention and the passphrase source from the next cycle on. A job already running
  finishes with the settings it started with. The repository directory stays until
  a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from atlas_tui.backup.config import BackupConfig
from atlas_tui.backup.errors import BackupError, RepositoryLocked, RunCancelled
from atlas_tui.backup.jobs import (
    RunRecorder,
    backup_job,
    cleanup_job,
    configured_sets,
    repository_path,
    retention_policy,
    verify_job,
)
from atlas_tui.backup.metrics import backup_samples
from atlas_tui.backup.models import BackupRequest
from atlas_tui.backup.schedule import (
    ActionKind,
    BackupSchedule,
    DueAction,
    SchedulePlan,
    ScheduleSettings,
    load_history,
)
from storage.backup_runs import finish_run, recover_interrupted
from storage.db import DB_FILENAME, connect, open_store
from storage.metrics import write_samples

if TYPE_CHECKING:
    from atlas_tui.backup.models import Snapshot
    from atlas_tui.backup.repository import Repository
    from atlas_tui.config import Config

__all__ = [
    "LOCKED_RETRY",
    "METRICS_INTERVAL",
    "PROGRESS_INTERVAL",
    "STOP_GRACE",
    "BackupEvent",
    "BackupService",
    "JobOutcome",
    "schedule_enabled",
]

METRICS_INTERVAL = 60.0
"""Maximum time in seconds between two cycles, and so between two metric writes."""
LOCKED_RETRY = 30.0
"""Seconds to wait before trying again when another process holds the repository lock."""
PROGRESS_INTERVAL = 1.0
"""Minimum seconds between two `progress` events of one job."""
STOP_GRACE = 3.0
"""Seconds `stop()` waits for a running job. It fits in the daemon's 4.5 s stop budget."""
STOPPED = "interrupted: the backup schedule stopped during the run"
"""Error stored on the rows of a job still running when the schedule stopped."""

JobStatus = Literal["ok", "partial", "failed", "locked", "cancelled"]
"""Status of a finished scheduled job. `locked` leaves no run record, `cancelled` records a failed run."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    """Outcome of one scheduled job."""

    kind: ActionKind
    status: JobStatus
    detail: str
    """One line for the log: snapshot id and counts, or the error."""


class BackupEvent(BaseModel):
    """A scheduled job starting, making progress or finishing, for listeners such as `WS /ws`."""

    kind: ActionKind
    """`backup`, `cleanup` or `test_restore`."""
    phase: Literal["started", "progress", "finished"]
    """Stage of the job: `started`, `progress` while a backup reads, `finished`."""
    sets: list[str]
    """Backup sets of a backup job; empty for the other kinds."""
    at: float
    """UTC epoch seconds of the event."""
    entries: int = 0
    """Files, links and other entries the backup has read so far."""
    bytes_read: int = 0
    """Bytes the backup has read so far."""
    status: JobStatus | None = None
    """Outcome of a finished job; null before."""
    detail: str | None = None
    """The outcome's log line: snapshot id and counts, or the error; null before the end."""


def schedule_enabled(config: Config, data_dir: Path) -> bool:
    """Return True when the daemon should run the backup schedule.

    That is when the config file has a `backup` section, or when a repository
    exists at the default path. A daemon without backup configuration then
    neither logs failures nor writes backup metrics.
    """
    if "backup" in config.model_fields_set:
        return True
    return (repository_path(config.backup, data_dir) / "config").is_file()


class BackupService:
    """Run the backup schedule of one repository until `stop()`."""

    def __init__(
        self,
        backup: BackupConfig,
        data_dir: Path,
        *,
        repository: Path,
        open_repository: Callable[[], Repository],
        clock: Callable[[], float] = time.time,
        metrics_interval: float = METRICS_INTERVAL,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        """Prepare the schedule; nothing is opened until `run()`.

        Args:
            backup: The `backup` config section.
            data_dir: Data directory holding the store.
            repository: Repository directory.
            open_repository: Opens the repository; called in the job thread before each job.
            clock: UTC epoch seconds; only `run()` and the jobs read it.
            metrics_interval: Maximum time between two cycles.
            stop_grace: Seconds `stop()` waits for a running job.
        """
        self.data_dir = data_dir
        self.repository = repository
        self.sets = configured_sets(backup, data_dir)
        self.settings = ScheduleSettings.from_config(backup, self.sets)
        self.schedule = BackupSchedule(self.settings)
        self.policy = retention_policy(backup)
        self._open_repository = open_repository
        self._clock = clock
        self._metrics_interval = metrics_interval
        self._stop_grace = stop_grace
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._started = False
        self._cancel = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atlas-backup")
        self._job: asyncio.Future[JobOutcome] | None = None
        self._deferred_until = 0.0
        self._cycle_error = ""
        self.abandoned = False
        """True when `run()` returned while a job thread was still running."""
        self.last_plan: SchedulePlan | None = None
        """The plan of the newest cycle."""
        self.backup_config = backup
        """The `backup` section in force; `for_daemon`'s repository opener reads its passphrase source."""
        self._reconfigured = asyncio.Event()
        self._listeners: list[Callable[[BackupEvent], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._action: DueAction | None = None
        self._last_progress = float("-inf")

    def add_listener(self, listener: Callable[[BackupEvent], None]) -> None:
        """Call `listener` on the event loop when a scheduled job starts, progresses or finishes."""
        self._listeners.append(listener)

    @classmethod
    def for_daemon(cls, backup: BackupConfig, data_dir: Path) -> BackupService:
        """Build the daemon's schedule: the configured repository, opened before each job.

        The passphrase is read again for each job from the environment variable or
        `backup.passphrase_file`, never from a prompt, so a missing one fails the job
        with a message naming both sources.
        """
        from atlas_tui.backup.passphrase import read_passphrase
        from atlas_tui.backup.repository import Repository

        path = repository_path(backup, data_dir)
        service: BackupService

        def open_repository() -> Repository:
            return Repository.open(path, read_passphrase(service.backup_config, None, prompt=False))

        service = cls(backup, data_dir, repository=path, open_repository=open_repository)
        return service

    def reconfigure(self, backup: BackupConfig) -> None:
        """Apply a reloaded `backup` section from the next cycle on; call it on the event loop.

        A new repository directory is logged and ignored until a restart, because the
        run records and metrics of the running one would mix with it.
        """
        configured = repository_path(backup, self.data_dir)
        if configured != self.repository:
            logger.warning(
                "backup repository change needs a restart running=%s configured=%s; the running one stays",
                self.repository, configured,
            )
        self.backup_config = backup
        self.sets = configured_sets(backup, self.data_dir)
        self.settings = ScheduleSettings.from_config(backup, self.sets)
        self.schedule = BackupSchedule(self.settings)
        self.policy = retention_policy(backup)
        self._reconfigured.set()
        logger.info(
            "backup schedule reconfigured repository=%s sets=%s frequency_s=%g test_restores=%s",
            self.repository, ",".join(item.name for item in self.sets), self.settings.frequency,
            self.settings.test_restores,
        )

    async def run(self) -> None:
        """Plan, write metrics and start due jobs until `stop()`.

        Raises:
            storage.errors.StoreOpenError: the store cannot be opened.
            storage.errors.MigrationError: the store's schema cannot be migrated.
        """
        self._started = True
        self._loop = asyncio.get_running_loop()
        try:
            conn = await asyncio.to_thread(open_store, self.data_dir)
        except BaseException:
            self._finished.set()
            raise
        recorder = RunRecorder(None, repository=self.repository, clock=self._clock)
        try:
            recorder.conn = await asyncio.to_thread(connect, self.data_dir / DB_FILENAME)
            await asyncio.to_thread(recover_interrupted, conn, self._clock())
            logger.info(
                "backup schedule started repository=%s sets=%s frequency_s=%g test_restores=%s",
                self.repository, ",".join(item.name for item in self.sets), self.settings.frequency,
                self.settings.test_restores,
            )
            while not self._stopping.is_set():
                plan = await self._cycle(conn)
                if plan is not None:
                    self._start_due(plan, recorder)
                await self._wait(plan)
        finally:
            await self._close(conn, recorder)
            self._finished.set()
            logger.info("backup schedule stopped repository=%s", self.repository)

    def request_stop(self) -> None:
        """Make `run()` return soon; safe to call from a signal handler on the loop."""
        self._stopping.set()
        self._cancel.set()

    async def stop(self) -> None:
        """Make `run()` return and wait for it, at most `STOP_GRACE` for a running job."""
        self.request_stop()
        if self._started:
            await self._finished.wait()

    async def _cycle(self, conn: sqlite3.Connection) -> SchedulePlan | None:
        try:
            plan = await asyncio.to_thread(self._plan_and_measure, conn, self._clock())
        except (sqlite3.Error, OSError) as err:
            error = f"{type(err).__name__}: {err}"
            level = logging.ERROR if error != self._cycle_error else logging.DEBUG
            logger.log(level, "backup schedule cycle failed repository=%s: %s; retrying", self.repository, error)
            self._cycle_error = error
            return None
        if self._cycle_error:
            logger.info("backup schedule cycle recovered repository=%s", self.repository)
            self._cycle_error = ""
        self.last_plan = plan
        return plan

    def _plan_and_measure(self, conn: sqlite3.Connection, now: float) -> SchedulePlan:
        repository = str(self.repository)
        plan = self.schedule.plan(load_history(conn, self.settings, repository), now)
        write_samples(conn, backup_samples(conn, [item.name for item in self.sets], repository=repository, now=now))
        return plan

    def _start_due(self, plan: SchedulePlan, recorder: RunRecorder) -> None:
        if self._job is not None or not plan.due or plan.now < self._deferred_until or self._stopping.is_set():
            return
        action = plan.due[0]
        logger.info(
            "scheduled %s started repository=%s sets=%s reason=%s",
            action.kind, self.repository, ",".join(action.sets) or "-", action.reason,
        )
        loop = asyncio.get_running_loop()
        self._action = action
        self._last_progress = float("-inf")
        self._job = loop.run_in_executor(self._executor, self._execute, action, recorder)
        self._emit(BackupEvent(kind=action.kind, phase="started", sets=list(action.sets), at=self._clock()))

    async def _wait(self, plan: SchedulePlan | None) -> None:
        now = self._clock()
        wake = now + self._metrics_interval
        if plan is not None and plan.next_wakeup is not None:
            wake = min(wake, plan.next_wakeup)
        if now < self._deferred_until:
            wake = min(wake, self._deferred_until)
        waiters: list[asyncio.Future[object]] = [
            asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._reconfigured.wait()),
        ]
        if self._job is not None:
            waiters.append(self._job)  # type: ignore[arg-type]
        await asyncio.wait(waiters, timeout=max(wake - now, 0.0), return_when=asyncio.FIRST_COMPLETED)
        waiters[0].cancel()
        waiters[1].cancel()
        self._reconfigured.clear()
        if self._job is not None and self._job.done():
            self._finish_job(self._job)

    def _finish_job(self, job: asyncio.Future[JobOutcome]) -> None:
        self._job = None
        outcome = job.result()
        action, self._action = self._action, None
        self._emit(BackupEvent(
            kind=outcome.kind, phase="finished", sets=list(action.sets) if action is not None else [],
            at=self._clock(), status=outcome.status, detail=outcome.detail,
        ))
        if outcome.status == "locked":
            delay = min(LOCKED_RETRY, self.settings.frequency)
            self._deferred_until = self._clock() + delay
            logger.info(
                "scheduled %s postponed repository=%s: %s; retrying in %gs",
                outcome.kind, self.repository, outcome.detail, delay,
            )
            return
        level = logging.INFO if outcome.status in ("ok", "cancelled") else logging.WARNING
        logger.log(
            level, "scheduled %s finished repository=%s status=%s %s",
            outcome.kind, self.repository, outcome.status, outcome.detail,
        )

    def _execute(self, action: DueAction, recorder: RunRecorder) -> JobOutcome:
        """Run one due action in the job thread and return its outcome; no `Exception` escapes."""
        now = self._clock()
        try:
            repository = self._open_repository()
            snapshot = repository.latest_snapshot() if action.kind == "test_restore" else None
        except (BackupError, OSError) as err:
            self._record_failure(action, recorder, now, err)
            return JobOutcome(action.kind, "failed", f"error={err}")
        try:
            return self._run_action(action, repository, snapshot, recorder, now)
        except RepositoryLocked as err:
            return JobOutcome(action.kind, "locked", f"locked by pid {err.pid} on {err.host}")
        except RunCancelled as err:
            return JobOutcome(action.kind, "cancelled", str(err))
        except (BackupError, OSError) as err:
            # The job function has already marked its rows failed.
            return JobOutcome(action.kind, "failed", f"error={err}")
        except Exception as err:  # noqa: BLE001 - worker boundary: record, log and keep the schedule going
            logger.exception("scheduled %s crashed repository=%s", action.kind, self.repository)
            recorder.fail(recorder.active_ids(), f"{type(err).__name__}: {err}")
            return JobOutcome(action.kind, "failed", f"error={type(err).__name__}: {err}")

    def _run_action(
        self, action: DueAction, repository: Repository, snapshot: Snapshot | None, recorder: RunRecorder, now: float
    ) -> JobOutcome:
        if action.kind == "backup":
            chosen = set(action.sets)
            request = BackupRequest(
                sets=[spec for spec in self.sets if spec.name in chosen], trigger="scheduled", now=now
            )
            result = backup_job(repository, request, recorder, progress=self._check_cancel)
            detail = (
                f"snapshot={result.id} files={result.files} read={result.files_read} "
                f"new_bytes={result.new_bytes_stored} duration_s={result.duration:.1f}"
            )
            return JobOutcome("backup", result.status, detail)
        if action.kind == "cleanup":
            cleaned = cleanup_job(repository, self.policy, recorder, trigger="scheduled", now=now)
            detail = f"removed_snapshots={len(cleaned.removed_snapshots)} freed_bytes={cleaned.freed_bytes}"
            return JobOutcome("cleanup", "ok", detail)
        assert snapshot is not None
        verified = verify_job(
            repository, snapshot, recorder, kind="test_restore", trigger="scheduled", now=now, locked=True
        )
        detail = f"snapshot={snapshot.id} checked={verified.checked} mismatches={len(verified.mismatches)}"
        return JobOutcome("test_restore", verified.status, detail)

    def _record_failure(self, action: DueAction, recorder: RunRecorder, now: float, err: BaseException) -> None:
        """Record a job that failed before its engine call, such as a missing passphrase or repository."""
        if action.kind == "backup":
            ids = [recorder.start("backup", "scheduled", now, set_name=name) for name in action.sets]
        else:
            ids = [recorder.start(action.kind, "scheduled", now)]
        recorder.fail(ids, err)

    def _check_cancel(self, entries: int, read: int) -> None:
        """Stop a backup when the schedule stops, and report its progress; runs in the job thread."""
        if self._cancel.is_set():
            raise RunCancelled(f"the backup schedule is stopping after {entries} entries and {read} bytes read")
        action, loop = self._action, self._loop
        if not self._listeners or action is None or loop is None:
            return
        tick = time.monotonic()
        if tick - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = tick
        event = BackupEvent(
            kind=action.kind, phase="progress", sets=list(action.sets), at=self._clock(), entries=entries,
            bytes_read=read,
        )
        loop.call_soon_threadsafe(self._emit, event)

    def _emit(self, event: BackupEvent) -> None:
        """Hand `event` to every listener; runs on the event loop."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the schedule
                logger.exception("backup event listener failed kind=%s phase=%s", event.kind, event.phase)

    async def _close(self, conn: sqlite3.Connection, recorder: RunRecorder) -> None:
        job = self._job
        if job is not None and not job.done():
            self._cancel.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(job), timeout=self._stop_grace)
        if job is not None and not job.done():
            self.abandoned = True
            ids = recorder.active_ids()
            logger.warning(
                "backup job still running at stop, left to the process exit repository=%s run_ids=%s",
                self.repository, ",".join(map(str, ids)) or "-",
            )
            await asyncio.to_thread(_mark_stopped, conn, ids, self._clock())
        elif job is not None:
            self._finish_job(job)
        self._executor.shutdown(wait=False)
        await asyncio.to_thread(conn.close)
        if not self.abandoned:
            await asyncio.to_thread(recorder.close)


def _mark_stopped(conn: sqlite3.Connection, run_ids: list[int], now: float) -> None:
    for run_id in run_ids:
        finish_run(conn, run_id, status="failed", now=now, error=STOPPED)
