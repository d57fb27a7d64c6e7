"""The backup schedule: which backup, cleanup and test restore are due, and when each set runs next.

`BackupSchedule.plan(history, now)` is a pure decision over the run records of one
repository (`RunHistory`, read by `load_history`), so due times survive a restart
and tests need no clock. `atlas_tui.backup.service` runs the first due action, reads
the history again and plans again. The rules:

- A set is due `backup_frequency` after the start of its last finished backup run
  (any trigger, so a manual backup also counts), and at once when it never ran.
- A set whose last run failed is retried `retry_delay(failures)` after that run
  ended: 1 min, doubling per consecutive failure, at most 1 h and at most
  `backup_frequency`. A partial run is not retried early: the unreadable paths
  usually stay unreadable, and the metrics report it.
- Due sets run together in one snapshot, higher priority first. Sets that are not
  failing and would be due within half a period join them, so the sets stay
  aligned in one snapshot and the files cache of the next run covers all of them.
- Cleanup (retention, then prune) is due after every scheduled backup that wrote a
  snapshot, and a failed cleanup is retried with the same backoff.
- A test restore (restore into a temporary directory and compare) of the newest
  snapshot is due once per `TEST_RESTORE_INTERVAL` while `test_restores_enabled`,
  first as soon as a snapshot exists. A failed one is retried with the same backoff.
- Due actions come in the order backup, cleanup, test restore.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from atlas_tui.backup.config import BackupConfig
from atlas_tui.backup.models import BackupSetSpec
from atlas_tui.durations import format_duration
from storage.backup_runs import BackupRun, RunKind, RunState, last_snapshot_finished, recent_runs

__all__ = [
    "JOIN_FRACTION",
    "RETRY_BASE",
    "RETRY_MAX",
    "TEST_RESTORE_INTERVAL",
    "ActionKind",
    "BackupSchedule",
    "DueAction",
    "KindHistory",
    "RunHistory",
    "ScheduleSettings",
    "ScheduledSet",
    "SchedulePlan",
    "SetPlan",
    "load_history",
    "retry_delay",
]

RETRY_BASE = 60.0
"""Seconds before the first retry of a failed run; each further failure doubles it."""
RETRY_MAX = 3600.0
"""Maximum retry delay in seconds."""
TEST_RESTORE_INTERVAL = 86400.0
"""Seconds between two scheduled test restores (one per day)."""
JOIN_FRACTION = 0.5
"""Sets due within this fraction of `backup_frequency` join a backup that is due now."""

_HISTORY_DEPTH = 16
"""Newest runs read per set and kind. Enough to count failures past the longest backoff (7)."""

ActionKind = Literal["backup", "cleanup", "test_restore"]
"""Work the schedule starts."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduledSet(_Frozen):
    """Name and priority of one backup set, as input of the schedule."""

    name: str
    priority: int = 0
    """Higher priority sets run first in a run."""


class ScheduleSettings(_Frozen):
    """The schedule's inputs from the `backup` config section."""

    frequency: float = Field(gt=0)
    """Seconds between two backups of a set (`backup_frequency`)."""
    test_restores: bool = True
    """Run periodic test restores (`test_restores_enabled`)."""
    test_restore_interval: float = Field(default=TEST_RESTORE_INTERVAL, gt=0)
    """Seconds between two test restores."""
    sets: tuple[ScheduledSet, ...] = Field(min_length=1)

    @classmethod
    def from_config(cls, backup: BackupConfig, sets: Sequence[BackupSetSpec]) -> ScheduleSettings:
        """Build the settings from the config section and the sets it resolves to (`jobs.configured_sets`)."""
        return cls(
            frequency=backup.backup_frequency,
            test_restores=backup.test_restores_enabled,
            sets=tuple(ScheduledSet(name=spec.name, priority=spec.priority) for spec in sets),
        )


class KindHistory(_Frozen):
    """The newest runs of one set's backups, of cleanups or of test restores."""

    last: BackupRun | None = None
    """Newest finished run."""
    failures: int = 0
    """Consecutive failed runs, counted from the newest finished one."""
    running: bool = False
    """True when the newest run is still `running`."""

    @classmethod
    def of(cls, newest_first: Sequence[BackupRun]) -> KindHistory:
        """Summarise runs given newest first."""
        finished = [run for run in newest_first if run.status != "running"]
        failures = 0
        for run in finished:
            if run.status != "failed":
                break
            failures += 1
        running = bool(newest_first) and newest_first[0].status == "running"
        return cls(last=finished[0] if finished else None, failures=failures, running=running)


class RunHistory(_Frozen):
    """Summary of the run records of one repository, the input of `BackupSchedule.plan`."""

    sets: dict[str, KindHistory] = Field(default_factory=dict)
    """Backup history per set name."""
    cleanup: KindHistory = KindHistory()
    test_restore: KindHistory = KindHistory()
    last_scheduled_snapshot: float | None = None
    """End of the newest scheduled backup run that wrote a snapshot."""
    last_snapshot: float | None = None
    """End of the newest backup run of any trigger that wrote a snapshot."""


class SetPlan(_Frozen):
    """When one set runs next, and why."""

    name: str
    priority: int
    next_run: float | None
    """UTC epoch seconds of the next backup; None while a backup of the set runs."""
    reason: str
    """Explanation of `next_run`, for `status` and the logs."""
    last_status: RunState | None = None
    """Status of the newest finished backup of the set; None when it never ran."""
    failures: int = 0
    """Consecutive failed backups of the set."""


class DueAction(_Frozen):
    """One piece of work that is due."""

    kind: ActionKind
    sets: tuple[str, ...] = ()
    """Sets of a backup, higher priority first; empty for the other kinds."""
    reason: str


class SchedulePlan(_Frozen):
    """The schedule's decision at one moment."""

    now: float
    sets: tuple[SetPlan, ...]
    """Every configured set, higher priority first."""
    due: tuple[DueAction, ...] = ()
    """Work due at `now`, in the order to run it."""
    next_wakeup: float | None = None
    """Earliest time after `now` at which more work becomes due; None when nothing is pending."""


def retry_delay(failures: int, cap: float) -> float:
    """Return the seconds to wait after `failures` consecutive failures, at most `cap` and `RETRY_MAX`."""
    delay = RETRY_BASE * 2.0 ** max(failures - 1, 0)
    return min(delay, RETRY_MAX, cap)


class BackupSchedule:
    """Decides what is due for one repository from its run history."""

    def __init__(self, settings: ScheduleSettings) -> None:
        self.settings = settings
        self._sets = sorted(settings.sets, key=lambda item: (-item.priority, item.name))

    def plan(self, history: RunHistory, now: float) -> SchedulePlan:
        """Return the work due at `now`, each set's next run and the next time to look again."""
        sets = tuple(self._set_plan(item, history.sets.get(item.name, KindHistory()), now) for item in self._sets)
        cleanup_at = self._cleanup_at(history)
        test_at = self._test_restore_at(history)

        due: list[DueAction] = []
        backup = self._backup_action(sets, now)
        if backup is not None:
            due.append(backup)
        if cleanup_at is not None and cleanup_at <= now:
            due.append(DueAction(kind="cleanup", reason=_cleanup_reason(history)))
        if test_at is not None and test_at <= now:
            due.append(DueAction(kind="test_restore", reason=_test_reason(history)))

        pending = [item.next_run for item in sets if item.next_run is not None] + [cleanup_at, test_at]
        later = [moment for moment in pending if moment is not None and moment > now]
        return SchedulePlan(now=now, sets=sets, due=tuple(due), next_wakeup=min(later, default=None))

    def _set_plan(self, item: ScheduledSet, history: KindHistory, now: float) -> SetPlan:
        last = history.last
        status = last.status if last is not None else None
        common = {"name": item.name, "priority": item.priority, "last_status": status, "failures": history.failures}
        if history.running:
            return SetPlan(next_run=None, reason="a backup of the set is running", **common)
        if last is None:
            return SetPlan(next_run=now, reason="never backed up", **common)
        if last.status == "failed":
            delay = retry_delay(history.failures, self.settings.frequency)
            return SetPlan(
                next_run=(last.finished or last.started) + delay,
                reason=f"retry after {history.failures} failed runs, {format_duration(delay)} after the last one",
                **common,
            )
        every = format_duration(self.settings.frequency)
        return SetPlan(next_run=last.started + self.settings.frequency, reason=f"every {every}", **common)

    def _backup_action(self, sets: Sequence[SetPlan], now: float) -> DueAction | None:
        due = [item for item in sets if item.next_run is not None and item.next_run <= now]
        if not due:
            return None
        horizon = now + JOIN_FRACTION * self.settings.frequency
        joined = [
            item for item in sets
            if item not in due and item.next_run is not None and item.failures == 0 and item.next_run <= horizon
        ]
        names = tuple(item.name for item in sets if item in due or item in joined)
        reason = "; ".join(f"{item.name}: {item.reason}" for item in due)
        if joined:
            reason += f"; joined early: {', '.join(item.name for item in joined)}"
        return DueAction(kind="backup", sets=names, reason=reason)

    def _cleanup_at(self, history: RunHistory) -> float | None:
        cleanup = history.cleanup
        if cleanup.running or history.last_scheduled_snapshot is None:
            return None
        last = cleanup.last
        if last is None or last.started < history.last_scheduled_snapshot:
            return history.last_scheduled_snapshot
        if last.status == "failed":
            return (last.finished or last.started) + retry_delay(cleanup.failures, self.settings.frequency)
        return None

    def _test_restore_at(self, history: RunHistory) -> float | None:
        test = history.test_restore
        if not self.settings.test_restores or test.running or history.last_snapshot is None:
            return None
        last = test.last
        interval = self.settings.test_restore_interval
        if last is None:
            return history.last_snapshot
        regular = last.started + interval
        if last.status == "failed":
            return min(regular, (last.finished or last.started) + retry_delay(test.failures, interval))
        return regular


def load_history(conn: sqlite3.Connection, settings: ScheduleSettings, repository: str) -> RunHistory:
    """Read the run records of `repository` that `BackupSchedule.plan` needs.

    **Read-only**, a few indexed statements.
    """
    sets = {
        item.name: KindHistory.of(
            recent_runs(conn, _HISTORY_DEPTH, "backup", set_name=item.name, repository=repository)
        )
        for item in settings.sets
    }
    return RunHistory(
        sets=sets,
        cleanup=_kind(conn, "cleanup", repository),
        test_restore=_kind(conn, "test_restore", repository),
        last_scheduled_snapshot=last_snapshot_finished(conn, repository=repository, trigger="scheduled"),
        last_snapshot=last_snapshot_finished(conn, repository=repository),
    )


def _kind(conn: sqlite3.Connection, kind: RunKind, repository: str) -> KindHistory:
    return KindHistory.of(recent_runs(conn, _HISTORY_DEPTH, kind, repository=repository))


def _cleanup_reason(history: RunHistory) -> str:
    last = history.cleanup.last
    if last is not None and last.status == "failed" and history.last_scheduled_snapshot is not None \
            and last.started >= history.last_scheduled_snapshot:
        return f"retry after {history.cleanup.failures} failed cleanups"
    return "a scheduled backup wrote a snapshot since the last cleanup"


def _test_reason(history: RunHistory) -> str:
    last = history.test_restore.last
    if last is None:
        return "no test restore yet"
    if last.status == "failed":
        return f"retry after {history.test_restore.failures} failed test restores"
    return "the last test restore is older than the interval"
