"""Tests of `LocalSource` against a real SQLite store in a temporary directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from textual.widgets import Label

from atlas_tui.config import Config
from atlas_tui.console.app import create_app
from atlas_tui.console.formatting import format_value
from atlas_tui.console.local_source import LocalSource
from atlas_tui.console.presentation import chart_views
from atlas_tui.console.source import ConsoleSnapshot
from atlas_tui.console.time_windows import WINDOWS
from atlas_tui.console.widgets.metrics_table import MetricsTable
from atlas_tui.lockfile import lock_holder
from collectors.base import Sample
from storage.db import open_store
from storage.errors import StorageError
from storage.metrics import update_rollups, write_samples
from storage.status import Heartbeat, clear_heartbeat, write_heartbeat
from tests.console.pilot_helpers import wait_for_snapshots

NOW = 1_750_000_000.0
OTHER_PID = os.getpid() + 1


def _fill(data_dir: Path, *, heartbeat_at: float | None) -> None:
    samples = []
    for step in range(30):
        ts = NOW - 300 + step * 10
        samples.append(Sample.of("cpu_usage", 10.0 + step, ts))
        samples.append(Sample.of("cpu_usage", 99.0, ts, cpu="0"))
        samples.append(Sample.of("memory_usage", 40.0, ts))
        for index, mount in enumerate(("/", "/home", "/srv", "/boot")):
            samples.append(Sample.of("disk_usage", 10.0 * (index + 1), ts, mount=mount))
        for interface, rate in (("eth0", 1000.0), ("wlan0", 500.0), ("lo", 1e9)):
            samples.append(Sample.of("net_recv_bytes_per_second", rate, ts, interface=interface))
            samples.append(Sample.of("net_sent_bytes_per_second", rate / 10, ts, interface=interface))
    conn = open_store(data_dir)
    try:
        write_samples(conn, samples)
        if heartbeat_at is not None:
            write_heartbeat(conn, Heartbeat(OTHER_PID, "db-host", NOW - 3600, heartbeat_at, "0.1.0"))
    finally:
        conn.close()


@pytest.fixture
def daemon_store(tmp_path: Path) -> Iterator[LocalSource]:
    """A source over a store whose daemon heartbeat is one second old."""
    _fill(tmp_path, heartbeat_at=NOW - 1)
    source = LocalSource(Config(), tmp_path)
    source.start(NOW)
    yield source
    source.close()


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_live_daemon_read_only(daemon_store: LocalSource) -> None:
    """A fresh heartbeat from another process means the console only reads."""
    snapshot = daemon_store.snapshot(300.0, NOW)
    assert not daemon_store.embedded
    assert snapshot.header.daemon_state == "running"
    assert snapshot.header.host == "db-host"
    assert snapshot.header.newest_sample_age == pytest.approx(10.0)


def test_rows_order_and_filter(daemon_store: LocalSource) -> None:
    """Rows follow the table order, leave out per-core CPU and pair recv/sent per interface."""
    snapshot = daemon_store.snapshot(300.0, NOW)
    keys = [row.key for row in snapshot.rows]
    assert keys[:2] == ["cpu_usage", "memory_usage"]
    assert "cpu_usage{cpu=0}" not in keys
    eth_recv = keys.index("net_recv_bytes_per_second{interface=eth0}")
    assert keys[eth_recv + 1] == "net_sent_bytes_per_second{interface=eth0}"
    assert snapshot.rows[0].value == 39.0


def _chart(snapshot: ConsoleSnapshot, chart_id: str):  # type: ignore[no-untyped-def]
    return next(chart for chart in snapshot.charts if chart.chart_id == chart_id)


def test_charts_from_store(daemon_store: LocalSource) -> None:
    """The CPU line contains the total only, and the disk chart the three fullest mounts."""
    snapshot = daemon_store.snapshot(300.0, NOW)
    (cpu,) = _chart(snapshot, "cpu").series
    assert len(cpu.points) == 30
    assert cpu.points[-1][1] == 39.0
    assert [line.title for line in _chart(snapshot, "disk").series] == ["/boot", "/srv", "/home"]


def test_network_total_skips_loopback(daemon_store: LocalSource) -> None:
    """Network totals add eth0 and wlan0 but not lo."""
    snapshot = daemon_store.snapshot(300.0, NOW)
    recv, sent = _chart(snapshot, "network").series
    assert {value for _ts, value in recv.points} == {1500.0}
    assert {value for _ts, value in sent.points} == {150.0}


def test_hung_daemon_keeps_reading(tmp_path: Path) -> None:
    """A stale heartbeat while another process holds the daemon lock shows `stale` and collects nothing."""
    _fill(tmp_path, heartbeat_at=NOW - 1)
    source = LocalSource(Config(), tmp_path)
    try:
        with _held_lock(tmp_path):
            source.start(NOW)
            snapshot = source.snapshot(300.0, NOW + 600)
            assert snapshot.header.daemon_state == "stale"
            assert not source.embedded
    finally:
        source.close()


def test_stale_heartbeat_lock_free_takes_over(daemon_store: LocalSource) -> None:
    """A stale heartbeat with no process holding the lock (daemon killed) starts embedded collection."""
    assert not daemon_store.embedded
    snapshot = daemon_store.snapshot(300.0, NOW + 600)
    assert snapshot.header.daemon_state == "embedded"
    assert daemon_store.embedded


def test_hung_daemon_exit_takes_over(tmp_path: Path) -> None:
    """When the process holding the lock exits, the next snapshot starts embedded collection."""
    _fill(tmp_path, heartbeat_at=NOW - 1)
    source = LocalSource(Config(), tmp_path)
    try:
        with _held_lock(tmp_path):
            source.start(NOW)
            assert source.snapshot(300.0, NOW + 600).header.daemon_state == "stale"
        snapshot = source.snapshot(300.0, NOW + 605)
        assert snapshot.header.daemon_state == "embedded"
        assert source.embedded
    finally:
        source.close()


def test_cleared_heartbeat_takes_over(daemon_store: LocalSource, tmp_path: Path) -> None:
    """A daemon that stops cleanly deletes its heartbeat, and the open console starts collecting."""
    assert daemon_store.snapshot(300.0, NOW).header.daemon_state == "running"
    conn = open_store(tmp_path)
    clear_heartbeat(conn)
    conn.close()
    snapshot = daemon_store.snapshot(300.0, NOW + 1)
    assert snapshot.header.daemon_state == "embedded"
    assert daemon_store.embedded


def test_start_beside_hung_daemon_reads_only(tmp_path: Path) -> None:
    """A console started while a hung daemon holds the lock does not write the store."""
    _fill(tmp_path, heartbeat_at=NOW - 600)
    source = LocalSource(Config(), tmp_path)
    try:
        with _held_lock(tmp_path):
            source.start(NOW)
            assert not source.embedded
    finally:
        source.close()


@contextmanager
def _held_lock(data_dir: Path) -> Iterator[int]:
    """Hold the daemon lock of `data_dir` in a child process, as a hung daemon would; yield its pid."""
    child = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        assert lock_holder(data_dir) == child.pid
        yield child.pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert lock_holder(data_dir) is None


# Takes the lock like `atlas daemon` does and keeps it until its stdin closes. It exits
# without `release`, so the lock file stays behind as a killed daemon leaves it.
_LOCK_HOLDER = """
import sys
from pathlib import Path
from atlas_tui.lockfile import DaemonLock
DaemonLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def test_no_daemon_collects_embedded(tmp_path: Path) -> None:
    """Without a heartbeat the console collects itself, with this machine's psutil values."""
    config = Config.model_validate({"collectors": {"system": {"interval": 0.5}}})
    source = LocalSource(config, tmp_path)
    source.start(time.time())
    try:
        assert source.embedded
        assert _eventually(lambda: "cpu_usage" in {row.name for row in source.snapshot(300.0, time.time()).rows})
        snapshot = source.snapshot(300.0, time.time())
        assert snapshot.header.daemon_state == "embedded"
        assert snapshot.header.host == socket.gethostname()
        assert any(row.name == "disk_usage" for row in snapshot.rows)
    finally:
        source.close()
    assert not source.embedded


def test_daemon_appearing_stops_embedded(tmp_path: Path) -> None:
    """A live daemon heartbeat from another process stops embedded collection."""
    _fill(tmp_path, heartbeat_at=None)
    source = LocalSource(Config(), tmp_path)
    source.start(NOW)
    try:
        assert source.embedded
        conn = open_store(tmp_path)
        write_heartbeat(conn, Heartbeat(OTHER_PID, "db-host", NOW, NOW, "0.1.0"))
        conn.close()
        snapshot = source.snapshot(300.0, NOW + 1)
        assert snapshot.header.daemon_state == "running"
        assert not source.embedded
    finally:
        source.close()


def test_snapshot_before_start(tmp_path: Path) -> None:
    """Calling snapshot before start raises an error that names the fix."""
    with pytest.raises(RuntimeError, match="call start"):
        LocalSource(Config(), tmp_path).snapshot(300.0, NOW)


def test_start_unusable_data_dir(tmp_path: Path) -> None:
    """A data directory path that is a file makes start raise, for the data loop to report."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    source = LocalSource(Config(), blocker)
    # NOTE: open_store lets mkdir's FileExistsError through here instead of StoreOpenError.
    with pytest.raises((StorageError, OSError)):
        source.start(NOW)
    source.close()


def _fill_last_hour(data_dir: Path) -> None:
    """Write an hour of 10 s samples whose newest one jumps far from the minute averages."""
    samples = []
    for step in range(360):
        ts = NOW - 3600 + 5 + step * 10
        last = step == 359
        samples.append(Sample.of("cpu_usage", 90.0 if last else 10.0, ts))
        samples.append(Sample.of("memory_usage", 70.0 if last else 40.0, ts))
        samples.append(Sample.of("disk_usage", 55.0 if last else 50.0, ts, mount="/"))
        for interface in ("eth0", "wlan0", "lo"):
            rate = 9000.0 if last else 1000.0
            samples.append(Sample.of("net_recv_bytes_per_second", rate, ts, interface=interface))
            samples.append(Sample.of("net_sent_bytes_per_second", rate / 10, ts, interface=interface))
    conn = open_store(data_dir)
    try:
        write_samples(conn, samples)
        update_rollups(conn, NOW)
        write_heartbeat(conn, Heartbeat(OTHER_PID, "db-host", NOW - 7200, NOW - 1, "0.1.0"))
    finally:
        conn.close()


def test_hour_legend_matches_table(tmp_path: Path) -> None:
    """At the 1 h window each legend prints the newest raw sample, not the last minute average."""
    _fill_last_hour(tmp_path)
    source = LocalSource(Config(), tmp_path, embedded=False)
    source.start(NOW)
    try:
        snapshot = source.snapshot(3600.0, NOW)
    finally:
        source.close()
    table = {row.key: format_value(row.value, row.unit) for row in snapshot.rows}
    views = {view.chart_id: view for view in chart_views(snapshot, WINDOWS[1])}
    (cpu,) = _chart(snapshot, "cpu").series
    assert len(cpu.points) < 360  # minute rollups, so the last point is an average
    assert cpu.points[-1][1] != 90.0
    assert views["cpu"].lines[0].latest == table["cpu_usage"] == "90.0 %"
    assert views["memory"].lines[0].latest == table["memory_usage"]
    assert views["disk"].lines[0].latest == table["disk_usage{mount=/}"]
    recv, sent = views["network"].lines
    assert recv.latest == format_value(18000.0, "bytes_per_second")
    assert sent.latest == format_value(1800.0, "bytes_per_second")


async def test_hour_legend_on_screen(tmp_path: Path) -> None:
    """On screen at the 1 h window, the CPU heading prints the value of the table's CPU row."""
    _fill_last_hour(tmp_path)
    config = Config()
    app = create_app(config, tmp_path, source=LocalSource(config, tmp_path, embedded=False), live=False, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_for_snapshots(pilot)
        await pilot.press("w")
        assert await wait_for_snapshots(pilot, 2)
        await pilot.pause()
        screen = app.main_screen
        table_value = str(screen.query_one(MetricsTable).get_cell("cpu_usage", "value")).strip()
        heading = str(screen.query_one("#chart-cpu .chart-heading", Label).render())
        assert table_value == "90.0 %"
        assert heading.endswith(f"total {table_value}")
