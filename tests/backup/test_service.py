"""The backup schedule loop with a real repository and store: runs, locks, failures, metrics, alerts."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atlas_tui.alerts.service import AlertService
from atlas_tui.backup.config import BackupConfig
from atlas_tui.backup.errors import RunCancelled
from atlas_tui.backup.jobs import RunRecorder, backup_job
from atlas_tui.backup.lock import RepositoryLock
from atlas_tui.backup.metrics import AGE_METRIC, NEVER, STATUS_METRIC, TEST_RESTORE_METRIC
from atlas_tui.backup.models import BackupRequest, BackupSetSpec
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.service import BackupEvent, BackupService
from atlas_tui.config import Config
from storage.alerts import list_alerts
from storage.backup_runs import INTERRUPTED, BackupRun, RunOwner, finish_run, recent_runs, start_run
from storage.db import open_store
from storage.metrics import latest

from tests.backup.conftest import PASSPHRASE, build_tree

HOUR = 3600.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """The store of the data directory `tmp_path / "data"`, which the service also opens."""
    conn = open_store(tmp_path / "data")
    yield conn
    conn.close()


def backup_config(source: Path, **keys: object) -> BackupConfig:
    """A `backup` section with set `files` (priority 5) of the tree and set `docs` (priority 1) of its docs."""
    return BackupConfig.model_validate({
        "sets": [
            {"name": "files", "paths": [str(source)], "priority": 5},
            {"name": "docs", "paths": [str(source / "docs")], "priority": 1},
        ],
        **keys,
    })


def service_for(
    config: BackupConfig, tmp_path: Path, repository: Repository, opener: Callable[[], Repository] | None = None
) -> BackupService:
    return BackupService(
        config, tmp_path / "data", repository=repository.path,
        open_repository=opener or (lambda: repository), metrics_interval=0.2,
    )


async def run_until(service: BackupService, condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Run the service until `condition()` is true or `timeout` passes, then stop it and return the condition."""
    task = asyncio.create_task(service.run())
    deadline = time.monotonic() + timeout
    try:
        while not condition() and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        return condition()
    finally:
        await service.stop()
        await task


def runs(store: sqlite3.Connection, kind: str | None = None) -> list[BackupRun]:
    return recent_runs(store, 100, kind)  # type: ignore[arg-type]


def finished(store: sqlite3.Connection, kind: str) -> list[BackupRun]:
    return [run for run in runs(store, kind) if run.status != "running"]


def metric(store: sqlite3.Connection, name: str, **labels: str) -> float | None:
    values = [item.value for item in latest(store, name) if dict(item.labels) == labels]
    return values[0] if values else None


async def test_schedule_records_runs(tmp_path: Path, repository: Repository, store: sqlite3.Connection) -> None:
    """A first cycle backs up both sets into one snapshot, then cleans up and test-restores it, recording each."""
    source = build_tree(tmp_path / "src")
    service = service_for(backup_config(source), tmp_path, repository)

    done = await run_until(service, lambda: bool(finished(store, "test_restore")))

    backups = finished(store, "backup")
    [cleanup] = finished(store, "cleanup")
    [test_restore] = finished(store, "test_restore")
    snapshot_ids = repository.snapshot_ids()
    assert done
    assert sorted((run.set_name, run.status, run.trigger) for run in backups) == [
        ("docs", "ok", "scheduled"), ("files", "ok", "scheduled"),
    ]
    assert {run.snapshot_id for run in backups} == set(snapshot_ids)
    assert snapshot_ids[0].endswith("_scheduled")
    assert (cleanup.status, cleanup.trigger) == ("ok", "scheduled")
    assert (test_restore.status, test_restore.snapshot_id) == ("ok", snapshot_ids[0])
    assert test_restore.files > 0
    assert metric(store, STATUS_METRIC, backup_set="files") == 0.0
    assert metric(store, STATUS_METRIC, backup_set="docs") == 0.0
    assert metric(store, AGE_METRIC, backup_set="files") is not None
    assert metric(store, AGE_METRIC, backup_set="files") < 0.01
    assert metric(store, TEST_RESTORE_METRIC) == 0.0
    assert not repository.path.joinpath("lock").read_text()


async def test_job_events_reach_listener(tmp_path: Path, repository: Repository, store: sqlite3.Connection) -> None:
    """A listener gets each scheduled job's start, progress and end, in order, on the event loop thread."""
    source = build_tree(tmp_path / "src")
    service = service_for(backup_config(source), tmp_path, repository)
    events: list[BackupEvent] = []
    threads: set[int] = set()

    def listen(event: BackupEvent) -> None:
        events.append(event)
        threads.add(threading.get_ident())

    service.add_listener(listen)
    done = await run_until(service, lambda: any(e.kind == "test_restore" and e.phase == "finished" for e in events))

    ends = [(e.kind, e.phase, e.status) for e in events if e.phase != "progress"]
    assert done
    assert ends == [
        ("backup", "started", None), ("backup", "finished", "ok"),
        ("cleanup", "started", None), ("cleanup", "finished", "ok"),
        ("test_restore", "started", None), ("test_restore", "finished", "ok"),
    ]
    backup_end = next(e for e in events if e.kind == "backup" and e.phase == "finished")
    progress = [e for e in events if e.phase == "progress"]
    assert events[0].sets == ["files", "docs"]
    assert backup_end.detail is not None
    assert backup_end.detail.startswith("snapshot=backup_")
    assert progress
    assert progress[0].entries > 0
    assert threads == {threading.get_ident()}


async def test_no_second_backup_before_due(
    tmp_path: Path, repository: Repository, store: sqlite3.Connection
) -> None:
    """With a 1 h frequency, cycles after the first run start no further backup."""
    source = build_tree(tmp_path / "src")
    service = service_for(backup_config(source, backup_frequency="1h"), tmp_path, repository)

    await run_until(service, lambda: False, timeout=1.5)

    assert len(finished(store, "backup")) == 2
    assert len(repository.snapshot_ids()) == 1
    assert service.last_plan is not None
    assert service.last_plan.sets[0].next_run == pytest.approx(finished(store, "backup")[0].started + HOUR)


async def test_locked_repository_postponed(
    tmp_path: Path, repository: Repository, store: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """A repository locked by another run is retried later, without a failed run, and backed up once free."""
    caplog.set_level(logging.INFO, logger="atlas_tui.backup.service")
    source = build_tree(tmp_path / "src")
    config = backup_config(source, backup_frequency="1s", test_restores_enabled=False)
    lock = RepositoryLock(repository.path, now=time.time())
    lock.acquire()
    service = service_for(config, tmp_path, repository)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.sleep(1.5)
        while_locked = runs(store)
        lock.release()
        deadline = time.monotonic() + 10
        while not finished(store, "backup") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        lock.release()
        await service.stop()
        await task

    assert while_locked == []
    assert "scheduled backup postponed" in caplog.text
    assert "locked by pid" in caplog.text
    assert {run.status for run in finished(store, "backup")} == {"ok"}


async def test_failure_not_retried_in_loop(tmp_path: Path, repository: Repository, store: sqlite3.Connection) -> None:
    """A missing repository fails each set once, names the fix, and waits for the backoff while cycles go on."""
    source = build_tree(tmp_path / "src")
    missing = tmp_path / "missing-repo"
    service = BackupService(
        backup_config(source), tmp_path / "data", repository=missing,
        open_repository=lambda: Repository.open(missing, PASSPHRASE), metrics_interval=0.1,
    )

    await run_until(service, lambda: False, timeout=1.5)

    failed = runs(store, "backup")
    assert sorted(run.set_name for run in failed) == ["docs", "files"]
    assert {run.status for run in failed} == {"failed"}
    assert "backup-manager init" in (failed[0].error or "")
    assert str(missing) in (failed[0].error or "")
    assert runs(store, "test_restore") == []
    assert service.last_plan is not None
    assert service.last_plan.sets[0].failures == 1
    assert service.last_plan.sets[0].next_run == pytest.approx((failed[0].finished or 0) + 60, abs=1)
    assert [item.value for item in latest(store, STATUS_METRIC)] == [2.0, 2.0]


async def test_interrupted_run_recovered_at_start(
    tmp_path: Path, repository: Repository, store: sqlite3.Connection
) -> None:
    """A run left `running` by a process of an earlier boot is failed as interrupted when the schedule starts."""
    source = build_tree(tmp_path / "src")
    owner = RunOwner.current().model_copy(update={"boot_id": "earlier-boot"})
    stale = start_run(
        store, kind="backup", trigger="scheduled", now=time.time() - HOUR, set_name="files",
        repository=str(repository.path), owner=owner,
    )
    service = service_for(backup_config(source, test_restores_enabled=False), tmp_path, repository)

    await run_until(service, lambda: bool(finished(store, "cleanup")))

    recovered = {run.run_id: run for run in runs(store)}[stale]
    assert (recovered.status, recovered.error) == ("failed", INTERRUPTED)
    assert {run.set_name for run in finished(store, "backup") if run.status == "ok"} == {"docs"}


async def test_age_alert_fires(tmp_path: Path, repository: Repository, store: sqlite3.Connection) -> None:
    """A set last backed up 27 h ago crosses `backup_last_success_age_hours > 26` in the real alert engine."""
    source = build_tree(tmp_path / "src")
    now = time.time()
    for name, age in (("files", 27 * HOUR), ("docs", HOUR)):
        run_id = start_run(store, kind="backup", trigger="manual", now=now - age, set_name=name,
                           repository=str(repository.path))
        finish_run(store, run_id, status="ok", now=now - age + 60, snapshot_id=f"backup_{int(now - age)}_manual")
    config = backup_config(source, backup_frequency="48h", test_restores_enabled=False)
    service = service_for(config, tmp_path, repository)
    await run_until(service, lambda: metric(store, AGE_METRIC, backup_set="docs") is not None)
    rules = Config.model_validate({"alert_rules": [
        {"id": "backup_stale", "condition": "backup_last_success_age_hours > 26", "severity": "critical"},
        {"id": "backup_failed", "condition": "backup_last_status >= 2", "severity": "warning"},
    ]})
    alerts = AlertService(rules, tmp_path / "data", statuses=list)

    alerts.evaluate_once(time.time(), after_restart=True)
    alerts.close()

    firing = [(alert.rule_id, dict(alert.labels).get("backup_set")) for alert in list_alerts(store) if alert.state == "firing"]
    assert metric(store, AGE_METRIC, backup_set="files") == pytest.approx(27.0, abs=0.01)
    assert firing == [("backup_stale", "files")]
    assert runs(store, "backup")[0].trigger == "manual"


async def test_never_run_status(tmp_path: Path, repository: Repository, store: sqlite3.Connection) -> None:
    """Before any run, the status metrics read 3 (never) and no age is written."""
    source = build_tree(tmp_path / "src")
    service = BackupService(
        backup_config(source), tmp_path / "data", repository=repository.path,
        open_repository=lambda: repository, metrics_interval=0.2,
    )

    await asyncio.to_thread(service._plan_and_measure, store, time.time())

    assert metric(store, STATUS_METRIC, backup_set="files") == NEVER
    assert metric(store, TEST_RESTORE_METRIC) == NEVER
    assert metric(store, AGE_METRIC, backup_set="files") is None


def test_cancelled_backup(tmp_path: Path, repository: Repository, store: sqlite3.Connection) -> None:
    """A backup stopped from its progress callback fails its rows, writes no snapshot and frees the lock."""
    source = build_tree(tmp_path / "src")
    recorder = RunRecorder(store, repository=repository.path)
    request = BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], trigger="scheduled", now=time.time())

    def stop_now(entries: int, read: int) -> None:
        raise RunCancelled(f"stopping after {entries} entries")

    with pytest.raises(RunCancelled):
        backup_job(repository, request, recorder, progress=stop_now)
    [cancelled] = runs(store)
    retried = backup_job(repository, request.model_copy(update={"now": time.time() + 1}), recorder)

    assert (cancelled.status, cancelled.error) == ("failed", "cancelled: stopping after 1 entries")
    assert retried.status == "ok"
    assert repository.snapshot_ids() == [retried.id]
    assert recorder.active_ids() == []
