"""`atlas daemon` on a damaged, locked or misnamed store, its heartbeat at stop, and its exit deadline."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from atlas_tui.lockfile import LOCK_FILENAME
from storage.db import DB_FILENAME, connect
from storage.status import read_heartbeat
from tests.daemon.conftest import FAST_CONFIG, DaemonProcess, atlas_env, poll
from tests.storage.damage import build_store, damage_pages, last_table_root

pytestmark = pytest.mark.e2e

STOP_BUDGET = 5.0
"""Seconds a daemon may take from SIGTERM to exit."""

REPO_ROOT = Path(__file__).resolve().parents[2]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _status(daemon: DaemonProcess) -> dict[str, object]:
    response = httpx.get(f"http://127.0.0.1:{daemon.port()}/api/system/status", headers=daemon.headers(), timeout=5.0)
    return dict(response.json())


def _collector(body: dict[str, object], name: str) -> dict[str, object]:
    collectors = body["collectors"]
    assert isinstance(collectors, list)
    return next(item for item in collectors if item["name"] == name)


@pytest.mark.parametrize("schema_hit", [False, True], ids=["data-pages", "schema-pages"])
def test_damaged_store_refused(
    schema_hit: bool, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    """A store with random bytes in some pages fails the start, naming the file and the fix.

    The file itself stays unchanged.
    """
    data_dir = tmp_path / "data"
    path = build_store(data_dir)
    first = 2 if schema_hit else last_table_root(path) + 1
    damage_pages(path, first=first, every=2)
    before = _digest(path)

    daemon = start_daemon(None, "--no-api", data_dir=data_dir)

    code = daemon.proc.wait(timeout=15)
    log = daemon.log()
    assert code == 1, log
    assert f"daemon not started: the store {path} is damaged" in log
    assert "restore it from a backup" in log
    assert "daemon started" not in log
    assert _digest(path) == before
    assert not (data_dir / LOCK_FILENAME).exists()


def test_data_dir_is_file(tmp_path: Path, start_daemon: Callable[..., DaemonProcess]) -> None:
    """A --data-dir that is a file fails the start with a message naming it, not an errno."""
    path = tmp_path / "plain-file"
    path.write_text("x", encoding="utf-8")

    daemon = start_daemon(None, "--no-api", data_dir=path)

    code = daemon.proc.wait(timeout=15)
    assert code == 1
    assert f"{path} is a file, not a directory; pass a directory to --data-dir" in daemon.log()
    assert "Errno" not in daemon.log()


def test_locked_store_in_status(start_daemon: Callable[..., DaemonProcess]) -> None:
    """A write lock held past busy_timeout shows as a store write failure in the API, then clears."""
    daemon = start_daemon(FAST_CONFIG)
    assert daemon.wait_for_log("collection started"), daemon.log()
    assert poll(lambda: _collector(_status(daemon), "system")["last_run"] is not None, timeout=10.0)

    holder = sqlite3.connect(daemon.data_dir / DB_FILENAME, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        failed = poll(
            lambda: str(_collector(_status(daemon), "system")["last_error"]).startswith("store write failed"),
            timeout=20.0,
            interval=0.2,
        )
        during = _status(daemon)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert failed, daemon.log()
    system = _collector(during, "system")
    assert str(system["last_error"]).startswith("store write failed: OperationalError: database is locked")
    assert int(system["store_write_failures"]) >= 1
    assert "database is locked" in str(during["store"]["last_write_error"])
    assert float(during["store"]["last_write_error_at"]) > time.time() - 60
    assert "store write failed collector=system" in daemon.log()

    recovered = poll(lambda: _collector(_status(daemon), "system")["last_error"] is None, timeout=15.0)
    assert recovered, daemon.log()
    assert _status(daemon)["store"]["last_write_error"] is not None


def test_clean_stop_clears_heartbeat(start_daemon: Callable[..., DaemonProcess]) -> None:
    """After SIGTERM the heartbeat row is gone, so readers see the daemon as absent at once."""
    daemon = start_daemon(None, "--no-api")
    assert daemon.wait_for_log("daemon started"), daemon.log()
    path = daemon.data_dir / DB_FILENAME

    def heartbeat_present() -> bool:
        conn = connect(path)
        try:
            return read_heartbeat(conn) is not None
        finally:
            conn.close()

    assert heartbeat_present()
    code, _seconds = daemon.stop()

    assert code == 0, daemon.log()
    assert not heartbeat_present()


def test_exit_despite_blocked_thread(tmp_path: Path) -> None:
    """SIGTERM ends the process within 5 s although a collector's worker thread still sleeps 10 s."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(FAST_CONFIG), encoding="utf-8")
    log_path = tmp_path / "daemon.log"
    command = [
        sys.executable, "-m", "tests.daemon.blocking_daemon", "daemon",
        "--data-dir", str(tmp_path / "data"), "--config", str(config_path), "--no-api",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=atlas_env(), cwd=REPO_ROOT)
    daemon = DaemonProcess(proc=proc, data_dir=tmp_path / "data", log_path=log_path)
    try:
        assert daemon.wait_for_log("collector failed collector=blocking"), daemon.log()

        code, seconds = daemon.stop(timeout=15.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    assert seconds < STOP_BUDGET, daemon.log()
    assert code == 0, daemon.log()
    assert "daemon stopped" in daemon.log()
    assert "exit forced after the stop deadline" in daemon.log()
    assert not (tmp_path / "data" / LOCK_FILENAME).exists()
