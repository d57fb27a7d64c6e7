"""SelfHealthCollector: collector outcomes, source availability, store sizes and the process."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import psutil

from collectors.base import CollectorStatus, Sample
from collectors.self_health import DB_FILENAME, SelfHealthCollector


def value_of(samples: list[Sample], name: str, **labels: str) -> float | None:
    """Return the value of the sample with this name and exactly these labels, or None."""
    wanted = tuple(sorted(labels.items()))
    matches = [sample.value for sample in samples if sample.name == name and sample.labels == wanted]
    assert len(matches) <= 1
    return matches[0] if matches else None


def ran(name: str, error: str | None = None, unavailable: dict[str, str] | None = None) -> CollectorStatus:
    """Return the status of a collector that finished one cycle."""
    return CollectorStatus(
        name=name, interval=5.0, last_run=1.0, last_duration_ms=12.5, last_error=error,
        runs=1, failures=1 if error else 0, unavailable=unavailable or {},
    )


def make_store(data_dir: Path) -> sqlite3.Connection:
    """Create a real WAL-mode SQLite file with one committed row and keep it open."""
    conn = sqlite3.connect(data_dir / DB_FILENAME, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    return conn


async def test_collector_up_and_duration(tmp_path: Path) -> None:
    """A collector that succeeded is up, one that failed is down, both report their duration."""
    statuses = [ran("system"), ran("node", error="timed out after 4s")]
    collector = SelfHealthCollector(lambda: statuses, tmp_path)

    samples = await collector.collect(time.time())

    assert value_of(samples, "collector_up", collector="system") == 1.0
    assert value_of(samples, "collector_up", collector="node") == 0.0
    assert value_of(samples, "collector_duration_ms", collector="system") == 12.5


async def test_collector_not_run_skipped(tmp_path: Path) -> None:
    """A collector whose first cycle has not finished gets no `collector_up` sample."""
    statuses = [CollectorStatus(name="system", interval=5.0, runs=1)]
    collector = SelfHealthCollector(lambda: statuses, tmp_path)

    samples = await collector.collect(time.time())

    assert value_of(samples, "collector_up", collector="system") is None


async def test_source_unavailable_then_recovered(tmp_path: Path) -> None:
    """An unavailable source reports 0, and 1 once it has recovered."""
    statuses = [ran("system", unavailable={"cpu_freq": "FileNotFoundError: no such file"})]
    collector = SelfHealthCollector(lambda: statuses, tmp_path)

    down = await collector.collect(time.time())
    statuses[0] = ran("system")
    up = await collector.collect(time.time())

    assert value_of(down, "collector_source_available", collector="system", source="cpu_freq") == 0.0
    assert value_of(up, "collector_source_available", collector="system", source="cpu_freq") == 1.0


async def test_store_sizes(tmp_path: Path) -> None:
    """Store sizes are the sizes of `atlas.db` and its WAL file on disk."""
    conn = make_store(tmp_path)
    collector = SelfHealthCollector(lambda: [], tmp_path)
    try:
        samples = await collector.collect(time.time())
        # Closing checkpoints the WAL into the database, so measure while it is open.
        db_size = os.path.getsize(tmp_path / DB_FILENAME)
        wal_size = os.path.getsize(tmp_path / f"{DB_FILENAME}-wal")
    finally:
        conn.close()

    assert value_of(samples, "store_db_bytes") == db_size
    assert value_of(samples, "store_wal_bytes") == wal_size
    assert wal_size > 0


async def test_missing_wal_is_zero(tmp_path: Path) -> None:
    """After the last connection closes SQLite removes the WAL, which is reported as 0 bytes."""
    make_store(tmp_path).close()
    collector = SelfHealthCollector(lambda: [], tmp_path)

    samples = await collector.collect(time.time())

    assert not (tmp_path / f"{DB_FILENAME}-wal").exists()
    assert value_of(samples, "store_wal_bytes") == 0.0


async def test_missing_store_unavailable(tmp_path: Path) -> None:
    """Without `atlas.db` no store size is reported and the store is named unavailable."""
    collector = SelfHealthCollector(lambda: [], tmp_path)

    samples = await collector.collect(time.time())

    assert value_of(samples, "store_db_bytes") is None
    assert value_of(samples, "store_wal_bytes") is None
    assert collector.unavailable_sources()["store"].startswith("FileNotFoundError")


async def test_process_metrics(tmp_path: Path) -> None:
    """RSS is reported every cycle, CPU percent from the second cycle on."""
    collector = SelfHealthCollector(lambda: [], tmp_path, process=psutil.Process())

    first = await collector.collect(time.time())
    second = await collector.collect(time.time())

    rss = value_of(first, "daemon_rss_bytes")
    cpu = value_of(second, "daemon_cpu_percent")
    assert rss is not None and rss > 0
    assert value_of(first, "daemon_cpu_percent") is None
    assert cpu is not None and cpu >= 0.0


def test_db_filename_matches_store() -> None:
    """The file name self-health stats is the one the store creates."""
    from storage.db import DB_FILENAME as STORE_FILENAME

    assert DB_FILENAME == STORE_FILENAME
