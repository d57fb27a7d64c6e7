"""The backup schedule's decisions, from run records in a real store and an injected `now`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.backup.config import BackupConfig
from atlas_tui.backup.jobs import configured_sets
from atlas_tui.backup.schedule import (
    RETRY_BASE,
    RETRY_MAX,
    TEST_RESTORE_INTERVAL,
    BackupSchedule,
    SchedulePlan,
    ScheduleSettings,
    load_history,
    retry_delay,
)
from storage.backup_runs import RunKind, RunTrigger, finish_run, start_run
from storage.db import open_store

T0 = 1_767_225_600.0
"""2026-01-01 00:00 UTC."""
HOUR = 3600.0
DAY = 86400.0
REPO = "/srv/backups"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_store(tmp_path)
    yield conn
    conn.close()


def settings(*sets: tuple[str, int], frequency: float = DAY, test_restores: bool = True) -> ScheduleSettings:
    """Settings for sets given as (name, priority)."""
    config = BackupConfig.model_validate({
        "backup_frequency": frequency,
        "test_restores_enabled": test_restores,
        "sets": [{"name": name, "paths": [f"/data/{name}"], "priority": priority} for name, priority in sets],
    })
    return ScheduleSettings.from_config(config, configured_sets(config, Path("/var/lib/atlas")))


def record(
    store: sqlite3.Connection,
    kind: RunKind,
    at: float,
    status: str,
    *,
    set_name: str | None = None,
    trigger: RunTrigger = "scheduled",
    took: float = 60.0,
) -> None:
    """Store one finished run started at `at` that took `took` seconds."""
    run_id = start_run(store, kind=kind, trigger=trigger, now=at, set_name=set_name, repository=REPO)
    snapshot = None if status == "failed" or kind != "backup" else f"backup_{int(at)}_{trigger}"
    finish_run(store, run_id, status=status, now=at + took, snapshot_id=snapshot)  # type: ignore[arg-type]


def plan(store: sqlite3.Connection, config: ScheduleSettings, now: float) -> SchedulePlan:
    """Plan as the service does: history from the store, then the decision at `now`."""
    return BackupSchedule(config).plan(load_history(store, config, REPO), now)


def due_kinds(result: SchedulePlan) -> list[str]:
    return [action.kind for action in result.due]


def test_never_run_due_now(store: sqlite3.Connection) -> None:
    """Sets that never ran are due at once, higher priority first, and nothing else is due."""
    config = settings(("logs", 1), ("node", 10), ("db", 10))

    result = plan(store, config, T0)

    assert due_kinds(result) == ["backup"]
    assert result.due[0].sets == ("db", "node", "logs")
    assert [item.next_run for item in result.sets] == [T0, T0, T0]
    assert [item.reason for item in result.sets] == ["never backed up"] * 3


def test_due_after_frequency(store: sqlite3.Connection) -> None:
    """A set is due one frequency after the start of its last run, not before."""
    config = settings(("node", 0))
    record(store, "backup", T0, "ok", set_name="node")
    record(store, "cleanup", T0 + 120, "ok")
    record(store, "test_restore", T0 + 180, "ok")

    early = plan(store, config, T0 + DAY - 1)
    on_time = plan(store, config, T0 + DAY)

    assert due_kinds(early) == []
    assert early.next_wakeup == T0 + DAY
    assert early.sets[0].next_run == T0 + DAY
    assert due_kinds(on_time) == ["backup"]


def test_manual_backup_counts(store: sqlite3.Connection) -> None:
    """A manual backup moves the set's next scheduled run one frequency after it."""
    config = settings(("node", 0))
    record(store, "backup", T0, "ok", set_name="node")
    record(store, "backup", T0 + 10 * HOUR, "ok", set_name="node", trigger="manual")

    result = plan(store, config, T0 + DAY)

    assert result.sets[0].next_run == T0 + 34 * HOUR
    assert "backup" not in due_kinds(result)


def test_failure_backoff(store: sqlite3.Connection) -> None:
    """Failed runs are retried after 1, 2, 4 ... minutes from the end of the last one, capped at 1 h."""
    config = settings(("node", 0))
    at = T0
    for failures in range(1, 9):
        record(store, "backup", at, "failed", set_name="node", took=5.0)
        result = plan(store, config, at + 5.0)
        expected = min(RETRY_BASE * 2 ** (failures - 1), RETRY_MAX)
        assert (failures, result.sets[0].next_run) == (failures, at + 5.0 + expected)
        assert result.sets[0].failures == failures
        assert due_kinds(result) == []
        at = result.sets[0].next_run or 0.0

    assert retry_delay(1, DAY) == 60.0
    assert retry_delay(7, DAY) == RETRY_MAX


def test_retry_capped_by_frequency(store: sqlite3.Connection) -> None:
    """With a frequency shorter than the backoff, a failed set is retried after one frequency."""
    config = settings(("node", 0), frequency=2.0)
    record(store, "backup", T0, "failed", set_name="node", took=1.0)

    result = plan(store, config, T0 + 1.0)

    assert result.sets[0].next_run == T0 + 3.0


def test_success_resets_backoff(store: sqlite3.Connection) -> None:
    """After a success the failures count is zero and the normal frequency applies."""
    config = settings(("node", 0))
    record(store, "backup", T0, "failed", set_name="node")
    record(store, "backup", T0 + HOUR, "failed", set_name="node")
    record(store, "backup", T0 + 2 * HOUR, "ok", set_name="node")

    result = plan(store, config, T0 + 3 * HOUR)

    assert result.sets[0].failures == 0
    assert result.sets[0].next_run == T0 + 2 * HOUR + DAY


def test_partial_not_retried_early(store: sqlite3.Connection) -> None:
    """A partial run keeps the normal frequency: unreadable paths rarely heal within minutes."""
    config = settings(("node", 0))
    record(store, "backup", T0, "partial", set_name="node")

    result = plan(store, config, T0 + HOUR)

    assert result.sets[0].next_run == T0 + DAY
    assert result.sets[0].last_status == "partial"


def test_running_set_not_started(store: sqlite3.Connection) -> None:
    """A set with a backup running has no next run and is not started again."""
    config = settings(("node", 0))
    start_run(store, kind="backup", trigger="manual", now=T0, set_name="node", repository=REPO)

    result = plan(store, config, T0 + 10)

    assert result.sets[0].next_run is None
    assert due_kinds(result) == []


def test_nearly_due_sets_join(store: sqlite3.Connection) -> None:
    """Sets due within half a period join a due backup; failing or far sets do not."""
    config = settings(("node", 10), ("db", 5), ("logs", 1), ("cache", 0))
    record(store, "backup", T0, "ok", set_name="node")
    record(store, "backup", T0 + 6 * HOUR, "ok", set_name="db")
    record(store, "backup", T0 + 20 * HOUR, "ok", set_name="logs")
    record(store, "backup", T0 + DAY - 40, "failed", set_name="cache", took=10)

    result = plan(store, config, T0 + DAY)

    assert result.due[0].sets == ("node", "db")
    assert "joined early: db" in result.due[0].reason


def test_cleanup_after_scheduled_backup(store: sqlite3.Connection) -> None:
    """Cleanup is due after a scheduled backup wrote a snapshot, once, and not after a manual one."""
    config = settings(("node", 0), test_restores=False)
    record(store, "backup", T0, "ok", set_name="node", trigger="manual")
    after_manual = plan(store, config, T0 + HOUR)
    record(store, "backup", T0 + DAY, "ok", set_name="node")
    after_scheduled = plan(store, config, T0 + DAY + HOUR)
    record(store, "cleanup", T0 + DAY + HOUR, "ok")
    after_cleanup = plan(store, config, T0 + DAY + 2 * HOUR)

    assert due_kinds(after_manual) == []
    assert due_kinds(after_scheduled) == ["cleanup"]
    assert due_kinds(after_cleanup) == []


def test_cleanup_retry(store: sqlite3.Connection) -> None:
    """A failed cleanup is retried after the backoff."""
    config = settings(("node", 0), test_restores=False)
    record(store, "backup", T0, "ok", set_name="node")
    record(store, "cleanup", T0 + HOUR, "failed", took=10)

    waiting = plan(store, config, T0 + HOUR + 30)
    retry = plan(store, config, T0 + HOUR + 10 + RETRY_BASE)

    assert due_kinds(waiting) == []
    assert waiting.next_wakeup == T0 + HOUR + 10 + RETRY_BASE
    assert due_kinds(retry) == ["cleanup"]
    assert retry.due[0].reason == "retry after 1 failed cleanups"


def test_test_restore_daily(store: sqlite3.Connection) -> None:
    """The first test restore follows the first snapshot; the next one comes a day after it."""
    config = settings(("node", 0))
    no_snapshot = plan(store, config, T0)
    record(store, "backup", T0, "ok", set_name="node", trigger="manual")
    first = plan(store, config, T0 + HOUR)
    record(store, "test_restore", T0 + HOUR, "ok")
    later = plan(store, config, T0 + 2 * HOUR)
    next_day = plan(store, config, T0 + HOUR + TEST_RESTORE_INTERVAL)

    assert "test_restore" not in due_kinds(no_snapshot)
    assert due_kinds(first) == ["test_restore"]
    assert due_kinds(later) == []
    assert "test_restore" in due_kinds(next_day)


def test_test_restore_disabled(store: sqlite3.Connection) -> None:
    """test_restores_enabled false never plans a test restore."""
    config = settings(("node", 0), test_restores=False)
    record(store, "backup", T0, "ok", set_name="node", trigger="manual")

    assert due_kinds(plan(store, config, T0 + 10 * DAY)) == ["backup"]


def test_failed_test_restore_retried(store: sqlite3.Connection) -> None:
    """A failed test restore is retried after the backoff, not a day later."""
    config = settings(("node", 0))
    record(store, "backup", T0, "ok", set_name="node", trigger="manual")
    record(store, "test_restore", T0 + HOUR, "failed", took=10)

    result = plan(store, config, T0 + HOUR + 10 + RETRY_BASE)

    assert due_kinds(result) == ["test_restore"]


def test_order_backup_cleanup_test(store: sqlite3.Connection) -> None:
    """When everything is due, the order is backup, cleanup, test restore."""
    config = settings(("node", 0))
    record(store, "backup", T0, "ok", set_name="node")

    result = plan(store, config, T0 + DAY)

    assert due_kinds(result) == ["backup", "cleanup", "test_restore"]


def test_history_survives_restart(tmp_path: Path) -> None:
    """A new connection (a restarted daemon) plans the same next run from the stored records."""
    config = settings(("node", 0))
    first = open_store(tmp_path)
    record(first, "backup", T0, "ok", set_name="node")
    before = plan(first, config, T0 + HOUR)
    first.close()

    second = open_store(tmp_path)
    after = plan(second, config, T0 + HOUR)
    second.close()

    assert after.sets == before.sets
    assert after.sets[0].next_run == T0 + DAY


def test_other_repository_ignored(store: sqlite3.Connection) -> None:
    """Runs into another repository do not move this repository's schedule."""
    config = settings(("node", 0))
    run_id = start_run(store, kind="backup", trigger="manual", now=T0, set_name="node", repository="/tmp/other")
    finish_run(store, run_id, status="ok", now=T0 + 1, snapshot_id="backup_1_manual")

    assert plan(store, config, T0 + HOUR).sets[0].reason == "never backed up"


def test_default_set_from_data_dir() -> None:
    """Without sets in the config, the schedule covers the `data` set of the data directory."""
    config = BackupConfig()

    result = ScheduleSettings.from_config(config, configured_sets(config, Path("/var/lib/atlas")))

    assert [item.name for item in result.sets] == ["data"]
    assert result.frequency == DAY
