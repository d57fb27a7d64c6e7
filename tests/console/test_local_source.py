"""Tests of `LocalSource` against a real SQLite store in a temporary directory."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atlas_tui.config import Config
from atlas_tui.console.local_source import LocalSource
from atlas_tui.console.source import ConsoleSnapshot
from collectors.base import Sample
from storage.db import open_store
from storage.errors import StorageError
from storage.metrics import write_samples
from storage.status import Heartbeat, write_heartbeat

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


def test_stale_daemon_shown(daemon_store: LocalSource) -> None:
    """A heartbeat that ages past the limit shows `stale` and starts no collection."""
    snapshot = daemon_store.snapshot(300.0, NOW + 600)
    assert snapshot.header.daemon_state == "stale"
    assert not daemon_store.embedded


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
