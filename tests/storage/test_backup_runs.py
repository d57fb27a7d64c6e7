"""`storage.backup_runs`: run rows, per-set queries, log lines and recovery of interrupted runs."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.backup_runs import (
    INTERRUPTED,
    RUN_RETENTION,
    LogLine,
    RunOwner,
    discard_run,
    finish_run,
    first_run_by_set,
    last_finished_by_set,
    last_runs_by_set,
    last_snapshot_finished,
    last_success_by_set,
    delete_old_runs,
    owner_gone,
    recent_runs,
    recent_runs_at_level,
    recover_interrupted,
    run_log,
    start_run,
)
from tests.storage.conftest import T0

REPO = "/srv/backups"

_HOLDER = """
import sys, time
from pathlib import Path
from storage.db import open_store
from storage.backup_runs import start_run
conn = open_store(Path(sys.argv[1]))
run_id = start_run(conn, kind="backup", trigger="scheduled", now=time.time(), set_name="node", repository="/r")
print(run_id, flush=True)
time.sleep(60)
"""


def backup(store: sqlite3.Connection, set_name: str, at: float, status: str, repository: str = REPO) -> int:
    """Store one finished backup row of `set_name` started at `at`."""
    run_id = start_run(store, kind="backup", trigger="scheduled", now=at, set_name=set_name, repository=repository)
    snapshot_id = None if status == "failed" else f"backup_{int(at)}_scheduled"
    finish_run(store, run_id, status=status, now=at + 10, snapshot_id=snapshot_id)
    return run_id


def test_start_and_finish(store: sqlite3.Connection) -> None:
    """A started run is `running` with this process as owner; finishing stores every field once."""
    run_id = start_run(store, kind="backup", trigger="manual", now=T0, set_name="node", repository=REPO)
    [running] = recent_runs(store)

    stored = finish_run(
        store, run_id, status="partial", now=T0 + 5, snapshot_id="backup_1_manual", files=3, bytes=30,
        bytes_read=20, bytes_new=10, error="1 paths could not be read",
    )
    again = finish_run(store, run_id, status="ok", now=T0 + 6)
    [finished] = recent_runs(store)

    assert (running.status, running.pid, running.host) == ("running", running.pid, socket.gethostname())
    assert stored is True
    assert again is False
    assert finished.status == "partial"
    assert (finished.finished, finished.snapshot_id, finished.files, finished.bytes) == (T0 + 5, "backup_1_manual", 3, 30)
    assert (finished.bytes_read, finished.bytes_new, finished.error) == (20, 10, "1 paths could not be read")


def test_invalid_kind_rejected(store: sqlite3.Connection) -> None:
    """The table rejects a kind outside the documented set."""
    with pytest.raises(sqlite3.IntegrityError):
        start_run(store, kind="restore", trigger="manual", now=T0)  # type: ignore[arg-type]


def test_per_set_queries(store: sqlite3.Connection) -> None:
    """Last run, last finished run, last success and first run are picked per set and repository."""
    backup(store, "node", T0, "ok")
    backup(store, "node", T0 + 100, "failed")
    backup(store, "db", T0 + 50, "partial")
    backup(store, "node", T0 + 500, "ok", repository="/elsewhere")
    running = start_run(store, kind="backup", trigger="manual", now=T0 + 200, set_name="node", repository=REPO)

    last = last_runs_by_set(store, repository=REPO)
    finished = last_finished_by_set(store, repository=REPO)
    success = last_success_by_set(store, repository=REPO)
    first = first_run_by_set(store, repository=REPO)

    assert last["node"].run_id == running
    assert finished["node"].status == "failed"
    assert finished["db"].status == "partial"
    assert success["node"].started == T0
    assert "db" not in success
    assert first == {"node": T0, "db": T0 + 50}
    assert last_success_by_set(store)["node"].repository == "/elsewhere"
    assert last_snapshot_finished(store, repository=REPO) == T0 + 60
    assert last_snapshot_finished(store, repository=REPO, trigger="manual") is None


def test_recent_runs_filters(store: sqlite3.Connection) -> None:
    """recent_runs returns newest first and honours limit, kind and set."""
    for offset in range(5):
        backup(store, "node", T0 + offset, "ok")
    cleanup = start_run(store, kind="cleanup", trigger="scheduled", now=T0 + 10, repository=REPO)

    newest = recent_runs(store, 2)
    backups = recent_runs(store, 10, "backup", set_name="node")

    assert [run.run_id for run in newest] == [cleanup, 5]
    assert [run.started for run in backups] == [T0 + 4, T0 + 3, T0 + 2, T0 + 1, T0]


def test_log_lines_by_level(store: sqlite3.Connection) -> None:
    """Log lines come back in order and filtered by level; warning-level queries pick matching runs."""
    quiet = backup(store, "node", T0, "ok")
    noisy = start_run(store, kind="backup", trigger="manual", now=T0 + 1, set_name="db")
    lines = [
        LogLine(ts=T0 + 2, level="debug", message="read 3 files"),
        LogLine(ts=T0 + 2, level="info", message="backup of set db: ok"),
        LogLine(ts=T0 + 2, level="warning", message="set db shrank"),
    ]
    finish_run(store, noisy, status="ok", now=T0 + 3, log=lines)
    failed = backup(store, "node", T0 + 5, "failed")

    everything = run_log(store, [quiet, noisy], min_level="debug")
    warnings = run_log(store, [noisy], min_level="warning")
    at_warning = recent_runs_at_level(store, "warning")

    assert [line.message for line in everything[noisy]] == ["read 3 files", "backup of set db: ok", "set db shrank"]
    assert quiet not in everything
    assert [line.level for line in warnings[noisy]] == ["warning"]
    assert [run.run_id for run in at_warning] == [failed, noisy]
    assert [run.run_id for run in recent_runs_at_level(store, "error")] == [failed]


def test_discard_run(store: sqlite3.Connection) -> None:
    """A discarded run leaves no row and no log line."""
    run_id = start_run(store, kind="cleanup", trigger="manual", now=T0)

    discard_run(store, run_id)

    assert recent_runs(store) == []
    assert run_log(store, [run_id], min_level="debug") == {}


def test_live_owner_not_recovered(store: sqlite3.Connection) -> None:
    """A running row of this live process stays running when another run starts."""
    first = start_run(store, kind="backup", trigger="manual", now=T0, set_name="node")
    start_run(store, kind="backup", trigger="manual", now=T0 + 1, set_name="db")

    assert recover_interrupted(store, T0 + 2) == []
    assert {run.run_id: run.status for run in recent_runs(store)}[first] == "running"
    assert owner_gone(RunOwner.current()) is False


def test_other_boot_recovered(store: sqlite3.Connection) -> None:
    """A running row written during another boot of this host is marked failed at the next start."""
    owner = RunOwner.current().model_copy(update={"boot_id": "00000000-previous-boot"})
    stale = start_run(store, kind="cleanup", trigger="scheduled", now=T0, owner=owner)

    start_run(store, kind="backup", trigger="manual", now=T0 + 60, set_name="node")
    run = {run.run_id: run for run in recent_runs(store)}[stale]

    assert (run.status, run.error, run.finished) == ("failed", INTERRUPTED, T0 + 60)
    assert run_log(store, [stale], min_level="error")[stale][0].message.startswith(INTERRUPTED)


def test_killed_process_recovered(tmp_path: Path, store: sqlite3.Connection) -> None:
    """The row of a process killed with SIGKILL mid-run turns failed (interrupted), and a late finish is ignored."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        run_id = int(holder.stdout.readline())
        before = recover_interrupted(store, time.time())
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)

    after = recover_interrupted(store, time.time())
    late = finish_run(store, run_id, status="ok", now=time.time())
    [run] = recent_runs(store)

    assert before == []
    assert after == [run_id]
    assert late is False
    assert (run.status, run.error) == ("failed", INTERRUPTED)


def test_old_runs_deleted_newest_kept(store: sqlite3.Connection) -> None:
    """Runs older than the retention go with their log lines; each set's newest run and newest success stay."""
    day = 86400.0
    for offset, status in ((0, "ok"), (day, "ok"), (2 * day, "failed"), (3 * day, "failed")):
        run_id = start_run(store, kind="backup", trigger="scheduled", now=T0 + offset, set_name="node", repository=REPO)
        finish_run(store, run_id, status=status, now=T0 + offset + 5, log=[LogLine(ts=T0, level="info", message="x")])
    running = start_run(store, kind="cleanup", trigger="scheduled", now=T0, repository=REPO)

    deleted = delete_old_runs(store, T0 + RUN_RETENTION + 4 * day, batch_size=1)

    remaining_days = sorted((run.started - T0) / day for run in recent_runs(store) if run.kind == "backup")
    assert deleted == 2
    assert remaining_days == [1.0, 3.0]
    assert [run.run_id for run in recent_runs(store, kind="cleanup")] == [running]
    assert store.execute("SELECT count(*) FROM backup_run_log").fetchone()[0] == 2
