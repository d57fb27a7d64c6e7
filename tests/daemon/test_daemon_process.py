"""`atlas daemon` as a real subprocess: collection, API, lock, signals and `--no-api`."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from atlas_tui import __version__
from atlas_tui.lockfile import LOCK_FILENAME
from tests.daemon.conftest import DaemonProcess, poll, run_atlas

pytestmark = pytest.mark.e2e

STOP_BUDGET = 5.0
"""Seconds a daemon may take from SIGTERM or SIGINT to exit."""

REQUIRED_SERIES = {
    ("cpu_usage", ()),
    ("memory_usage", ()),
    ("disk_usage", (("mount", "/"),)),
}


def _metrics_json(data_dir: Path) -> list[dict[str, object]]:
    result = run_atlas("metrics", "--json", "--data-dir", str(data_dir))
    return json.loads(result.stdout) if result.stdout.strip() else []


def _has_required(items: list[dict[str, object]]) -> bool:
    found = {(item["name"], tuple(sorted(item["labels"].items()))) for item in items}
    return REQUIRED_SERIES <= found


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    return proc.pid


def test_metrics_listed_after_collection(module_daemon: DaemonProcess) -> None:
    """`atlas metrics --json` lists cpu, memory and `/` disk usage with fresh timestamps."""
    items: list[dict[str, object]] = []

    def collected() -> bool:
        nonlocal items
        items = _metrics_json(module_daemon.data_dir)
        return _has_required(items)

    assert poll(collected, timeout=15.0, interval=0.3), items
    now = time.time()
    for item in items:
        if (item["name"], tuple(sorted(item["labels"].items()))) in REQUIRED_SERIES:
            assert now - float(item["ts"]) < 5.0, item


def test_api_metrics_filter(module_daemon: DaemonProcess) -> None:
    """GET /api/metrics?name=disk_usage returns only disk_usage series, `/` among them."""
    url = f"http://127.0.0.1:{module_daemon.port()}/api/metrics"
    headers = module_daemon.headers()
    assert poll(lambda: bool(httpx.get(url, params={"name": "disk_usage"}, headers=headers).json()), timeout=10.0)

    items = httpx.get(url, params={"name": "disk_usage"}, headers=headers).json()
    assert {item["name"] for item in items} == {"disk_usage"}
    assert {"mount": "/"} in [item["labels"] for item in items]


def test_api_system_status(module_daemon: DaemonProcess) -> None:
    """GET /api/system/status reports version, pid, a running daemon and the system collector."""
    url = f"http://127.0.0.1:{module_daemon.port()}/api/system/status"
    headers = module_daemon.headers()

    def system_ran() -> bool:
        body = httpx.get(url, headers=headers).json()
        return any(c["name"] == "system" and c["last_run"] for c in body["collectors"])

    assert poll(system_ran, timeout=10.0)
    body = httpx.get(url, headers=headers).json()
    assert body["version"] == __version__
    assert body["pid"] == module_daemon.pid
    assert body["daemon"]["state"] == "running"
    assert body["store"]["db_bytes"] > 0
    assert body["uptime_seconds"] >= 0


def test_sighup_keeps_running(module_daemon: DaemonProcess) -> None:
    """SIGHUP reloads the unchanged config and the daemon keeps running."""
    module_daemon.proc.send_signal(signal.SIGHUP)

    assert module_daemon.wait_for_log("config reloaded", timeout=5.0), module_daemon.log()
    assert "changed=none" in module_daemon.log()
    assert module_daemon.proc.poll() is None


def test_second_daemon_refused(module_daemon: DaemonProcess, start_daemon: Callable[..., DaemonProcess]) -> None:
    """A second daemon on the same data directory exits non-zero naming the first pid."""
    second = start_daemon(None, data_dir=module_daemon.data_dir)

    code = second.proc.wait(timeout=15)
    assert code != 0
    assert f"pid {module_daemon.pid}" in second.log()
    assert module_daemon.proc.poll() is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_signal_stops_and_releases(sig: signal.Signals, start_daemon: Callable[..., DaemonProcess]) -> None:
    """SIGTERM or SIGINT stops the daemon with exit 0 within 5 s and frees the lock."""
    daemon = start_daemon()
    assert daemon.wait_for_log("collection started"), daemon.log()

    code, seconds = daemon.stop(sig)

    assert code == 0, daemon.log()
    assert seconds < STOP_BUDGET
    assert "daemon stopped" in daemon.log()
    assert not (daemon.data_dir / LOCK_FILENAME).exists()
    print(f"stop after {sig.name}: {seconds:.2f}s")

    successor = start_daemon(None, data_dir=daemon.data_dir)
    assert successor.wait_for_log("daemon started"), successor.log()


def test_stale_lock_taken_over(tmp_path: Path, start_daemon: Callable[..., DaemonProcess]) -> None:
    """A lock file naming a dead pid is taken over and the log names the old pid."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    dead = _dead_pid()
    (data_dir / LOCK_FILENAME).write_text(f"{dead}\n", encoding="utf-8")

    daemon = start_daemon(None, data_dir=data_dir)

    assert daemon.wait_for_log("daemon started"), daemon.log()
    assert f"taking over stale lock file path={data_dir / LOCK_FILENAME} old_pid={dead}" in daemon.log()
    lock_pid = int((data_dir / LOCK_FILENAME).read_text(encoding="ascii"))
    assert lock_pid == daemon.pid


def test_no_api_opens_no_port(start_daemon: Callable[..., DaemonProcess]) -> None:
    """With `--no-api` the daemon collects but listens on no TCP port."""
    daemon = start_daemon(None, "--no-api")
    assert daemon.wait_for_log("collection started"), daemon.log()

    listening = [
        conn
        for conn in psutil.Process(daemon.pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert daemon.port() is None
    assert listening == []


def test_busy_port_fails_start(start_daemon: Callable[..., DaemonProcess], module_daemon: DaemonProcess) -> None:
    """A daemon whose API port is taken exits non-zero naming the port and the fix."""
    port = module_daemon.port()
    daemon = start_daemon(None, "--port", str(port))

    code = daemon.proc.wait(timeout=15)
    assert code != 0
    assert f"cannot listen on 127.0.0.1:{port}" in daemon.log()
    assert not (daemon.data_dir / LOCK_FILENAME).exists()


def test_log_file_written(tmp_path: Path, start_daemon: Callable[..., DaemonProcess]) -> None:
    """`--log-file` receives the same lifecycle lines as stderr."""
    log_file = tmp_path / "logs" / "daemon.log"
    daemon = start_daemon(None, "--no-api", "--log-file", str(log_file))
    assert daemon.wait_for_log("daemon started"), daemon.log()

    code, _seconds = daemon.stop()

    assert code == 0, daemon.log()
    text = log_file.read_text(encoding="utf-8")
    assert "daemon started" in text
    assert "daemon stopped" in text


def test_corrupt_store_fails_start(tmp_path: Path, start_daemon: Callable[..., DaemonProcess]) -> None:
    """A data directory whose atlas.db is not SQLite fails the start and frees the lock."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "atlas.db").write_bytes(b"not a database, just text " * 200)

    daemon = start_daemon(None, "--no-api", data_dir=data_dir)

    code = daemon.proc.wait(timeout=15)
    assert code != 0
    assert "daemon not started" in daemon.log()
    assert str(data_dir) in daemon.log()
    assert not (data_dir / LOCK_FILENAME).exists()


def test_maintenance_runs_periodically(start_daemon: Callable[..., DaemonProcess]) -> None:
    """With a 0.5 s maintenance interval the daemon runs rollups and checkpoints repeatedly."""
    config = {"collectors": {"system": {"interval": "0.5s"}}, "storage": {"maintenance_interval": "0.5s"}}
    daemon = start_daemon(config, "--no-api", "--log-level", "DEBUG")

    assert poll(lambda: daemon.log().count("maintenance done") >= 2, timeout=15.0), daemon.log()
    assert "checkpoint mode=PASSIVE" in daemon.log()


def test_config_port_used(start_daemon: Callable[..., DaemonProcess]) -> None:
    """Without --port the API listens on the config's top-level `port`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"port": port, "collectors": {"system": {"interval": "0.5s"}}}

    daemon = start_daemon(config, free_port=False)

    assert daemon.wait_for_log("daemon started"), daemon.log()
    assert daemon.port() == port
    assert httpx.get(f"http://127.0.0.1:{port}/api/system/status", headers=daemon.headers()).status_code == 200
