"""Tests for concurrent use: a writer, a maintainer and a reader, each on its own connection.

They pin the WAL behaviour the daemon relies on: readers never see a half-written
cycle, never hit "database is locked", and never keep a snapshot that stops a
checkpoint from resetting the WAL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from collectors.base import Sample
from storage import (
    DB_FILENAME,
    apply_retention,
    checkpoint,
    connect,
    latest,
    range_query,
    store_size,
    update_rollups,
    window,
    write_samples,
)
from storage.db import JOURNAL_SIZE_LIMIT
from tests.storage.conftest import T0

SERIES = 50
CYCLES = 400


def _cycle(k: int) -> list[Sample]:
    """Cycle k writes value k at T0 + k to every series."""
    return [Sample.of("disk_usage", float(k), T0 + k, mount=f"/m{i}") for i in range(SERIES)]


def _run_in_thread(
    conn: sqlite3.Connection,
    body: Callable[[sqlite3.Connection], None],
    errors: list[BaseException],
) -> threading.Thread:
    def target() -> None:
        try:
            body(conn)
        except BaseException as err:  # collected so the test can assert on it
            errors.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _check_snapshot(conn: sqlite3.Connection, problems: list[str]) -> None:
    """Read latest and a range once; record any sign of a half-written cycle."""
    values = latest(conn, "disk_usage")
    stamps = {v.ts for v in values}
    if values and (len(values) != SERIES or len(stamps) != 1):
        problems.append(f"latest mixes cycles: {len(values)} series, {len(stamps)} timestamps")
    for v in values:
        if v.value != v.ts - T0:
            problems.append(f"latest value {v.value} does not belong to ts {v.ts}")

    ranges = range_query(conn, "disk_usage", T0, T0 + CYCLES)
    lengths = {len(r.points) for r in ranges}
    if len(lengths) > 1:
        problems.append(f"range mixes cycles: point counts {sorted(lengths)}")


def test_reader_during_writes(tmp_path: Path, store: sqlite3.Connection) -> None:
    """A reader looping during writes reads whole cycles only and never hits a lock error."""
    writer = connect(tmp_path / DB_FILENAME)
    maintainer = connect(tmp_path / DB_FILENAME)
    reader = connect(tmp_path / DB_FILENAME)
    done = threading.Event()
    errors: list[BaseException] = []
    problems: list[str] = []
    reads = 0

    written = 0
    deleted = 0

    def write_all(conn: sqlite3.Connection) -> None:
        nonlocal written
        for k in range(1, CYCLES + 1):
            write_samples(conn, _cycle(k))
            written = k
        done.set()

    def maintain(conn: sqlite3.Connection) -> None:
        # One more pass after the writer ends, so retention has old rows to delete
        # even when the writer finished before this thread got the CPU.
        nonlocal deleted
        while True:
            finished = done.is_set()
            now = T0 + written
            update_rollups(conn, now=now)
            deleted += apply_retention(conn, now=now, raw_keep=CYCLES / 4, rollup_keep=CYCLES)
            checkpoint(conn)
            if finished:
                return

    def read(conn: sqlite3.Connection) -> None:
        nonlocal reads
        while not done.is_set():
            _check_snapshot(conn, problems)
            reads += 1

    threads = [
        _run_in_thread(writer, write_all, errors),
        _run_in_thread(maintainer, maintain, errors),
        _run_in_thread(reader, read, errors),
    ]
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert problems == []
    assert reads > 0
    assert deleted > 0
    assert [v.ts for v in latest(store, "disk_usage", {"mount": "/m0"})] == [T0 + CYCLES]
    for conn in (writer, maintainer, reader):
        conn.close()


def test_checkpoint_after_reads(tmp_path: Path, store: sqlite3.Connection) -> None:
    """After reads on an open reader connection, a passive checkpoint copies every frame."""
    reader = connect(tmp_path / DB_FILENAME)
    for k in range(1, 51):
        write_samples(store, _cycle(k))
    latest(reader)
    window(reader, "disk_usage", "avg", 60.0, T0 + 50)
    range_query(reader, "disk_usage", T0, T0 + 50, max_points=10)
    write_samples(store, _cycle(51))

    busy, log, done = checkpoint(store)

    assert busy == 0
    assert done == log
    reader.close()


def test_open_snapshot_pins_wal(tmp_path: Path, store: sqlite3.Connection) -> None:
    """A read transaction left open stops a checkpoint short, the hazard the read API avoids."""
    reader = connect(tmp_path / DB_FILENAME)
    write_samples(store, _cycle(1))
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM samples").fetchall()
    write_samples(store, _cycle(2))

    _busy, log, done = checkpoint(store)

    assert done < log
    reader.execute("COMMIT")
    reader.close()


def test_wal_bounded_after_checkpoint(tmp_path: Path, store: sqlite3.Connection) -> None:
    """The WAL stays under the size limit and a truncating checkpoint empties it."""
    for k in range(1, 301):
        write_samples(store, _cycle(k))
        if k % 100 == 0:
            checkpoint(store)
            assert store_size(tmp_path).wal_bytes <= JOURNAL_SIZE_LIMIT

    checkpoint(store, "TRUNCATE")

    assert store_size(tmp_path).wal_bytes == 0
    assert store_size(tmp_path).db_bytes > 0
