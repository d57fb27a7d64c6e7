"""`atlas daemon` runs the backup schedule: scheduled snapshots, run records, metrics and a clean stop."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_tui.backup.repository import Repository
from storage.backup_runs import recent_runs
from storage.db import DB_FILENAME, connect
from storage.metrics import latest
from tests.backup.conftest import SMALL_CHUNKS, build_tree
from tests.daemon.conftest import DaemonProcess, poll

pytestmark = pytest.mark.e2e

PASSPHRASE = "daemon schedule passphrase"
STOP_BUDGET = 5.0
"""Seconds the daemon may take from SIGTERM to exit, as for every daemon stop."""


def scheduled_snapshots(repository: Path) -> list[str]:
    return sorted(path.name for path in (repository / "snapshots").iterdir() if path.name.endswith("_scheduled"))


def read_store(data_dir: Path, query: Callable[[sqlite3.Connection], object]) -> object:
    """Run `query` on the daemon's store, or return None while the store or its tables do not exist yet."""
    path = data_dir / DB_FILENAME
    if not path.is_file():
        return None
    conn = connect(path)
    try:
        return query(conn)
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def status_metric(data_dir: Path) -> float | None:
    values = read_store(data_dir, lambda conn: [item.value for item in latest(conn, "backup_last_status")])
    return values[0] if isinstance(values, list) and values else None


def test_daemon_backs_up_on_schedule(
    tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    """With a 2 s frequency the daemon writes scheduled snapshots and `backup_last_status` 0, then stops in time."""
    source = build_tree(tmp_path / "src")
    repository = tmp_path / "repo"
    Repository.init(repository, PASSPHRASE.encode(), now=time.time(), chunker=SMALL_CHUNKS, scrypt_n=2**10)
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n", encoding="utf-8")
    config = {
        "collectors": {"system": {"interval": "0.5s"}},
        "backup": {
            "repository": str(repository),
            "passphrase_file": str(passphrase_file),
            "backup_frequency": "2s",
            "sets": [{"name": "src", "paths": [str(source)], "priority": 10}],
        },
    }

    daemon = start_daemon(config, "--no-api")
    assert daemon.wait_for_log("daemon started"), daemon.log()
    two_snapshots = poll(lambda: len(scheduled_snapshots(repository)) >= 2, timeout=20.0)
    measured = poll(lambda: status_metric(daemon.data_dir) == 0.0, timeout=10.0)
    code, took = daemon.stop(signal.SIGTERM)
    runs = read_store(daemon.data_dir, lambda conn: recent_runs(conn, 100))

    assert two_snapshots, daemon.log()
    assert measured, daemon.log()
    assert code == 0, daemon.log()
    assert took < STOP_BUDGET
    assert isinstance(runs, list)
    assert {run.status for run in runs} <= {"ok", "failed"}
    assert {run.snapshot_id for run in runs if run.kind == "backup"} >= set(scheduled_snapshots(repository)[:2])
    assert any(run.kind == "test_restore" and run.status == "ok" for run in runs)
    assert "backup schedule started" in daemon.log()
    assert "backup schedule stopped" in daemon.log()


def test_sighup_changes_backup_schedule(
    tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    """A reloaded backup section adds a set and a shorter frequency without a restart."""
    first, second = build_tree(tmp_path / "first"), build_tree(tmp_path / "second", seed=2)
    repository = tmp_path / "repo"
    Repository.init(repository, PASSPHRASE.encode(), now=time.time(), chunker=SMALL_CHUNKS, scrypt_n=2**10)
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n", encoding="utf-8")
    backup: dict[str, object] = {
        "repository": str(repository),
        "passphrase_file": str(passphrase_file),
        "backup_frequency": "24h",
        "test_restores_enabled": False,
        "sets": [{"name": "first", "paths": [str(first)], "priority": 10}],
    }
    daemon = start_daemon({"collectors": {"system": {"interval": "0.5s"}}, "backup": backup}, "--no-api")
    assert daemon.wait_for_log("daemon started"), daemon.log()
    assert poll(lambda: len(scheduled_snapshots(repository)) == 1, timeout=20.0), daemon.log()

    backup["backup_frequency"] = "2s"
    backup["sets"] = [*backup["sets"], {"name": "second", "paths": [str(second)], "priority": 5}]  # type: ignore[misc]
    config_path = daemon.log_path.parent / "config.json"
    config_path.write_text(json.dumps({"collectors": {"system": {"interval": "0.5s"}}, "backup": backup}))
    daemon.proc.send_signal(signal.SIGHUP)
    reloaded = daemon.wait_for_log("backup schedule reconfigured")

    def second_set_backed_up() -> bool:
        runs = read_store(daemon.data_dir, lambda conn: recent_runs(conn, 100, kind="backup"))
        return isinstance(runs, list) and any(run.set_name == "second" and run.status == "ok" for run in runs)

    backed_up = poll(second_set_backed_up, timeout=20.0)
    code, _ = daemon.stop(signal.SIGTERM)

    assert reloaded, daemon.log()
    assert backed_up, daemon.log()
    assert code == 0, daemon.log()
