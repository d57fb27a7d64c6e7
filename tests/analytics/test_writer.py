"""`BatchWriter`: concurrent batches share a transaction, a failing batch rolls back alone."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from atlas_tui.analytics.writer import BatchWriter, WriterClosedError
from storage.db import DB_FILENAME, connect
from storage.events import EventRow, count_events, counter_key, read_counters

ROW = EventRow(
    app_id="app", event_id="e-0", type="screen_view", schema_version=1, schema_known=True, session_id="s",
    device_hash="d" * 64, user_hash=None, app_version="1.0", platform="ios", privacy_level="standard",
    client_ts=100.0, sent_at=100.0, received_at=100.0, skew=0.0, event_ts=100.0, future_clamped=False,
    ip_prefix=None, attrs="{}", properties="{}", extra=None, content_hash="h",
)  # fmt: skip


def rows(prefix: str, count: int) -> list[EventRow]:
    return [dataclasses.replace(ROW, event_id=f"{prefix}-{index}") for index in range(count)]


def writer_for(data_dir: Path, **options: float) -> BatchWriter:
    return BatchWriter(lambda: connect(data_dir / DB_FILENAME), **options)  # type: ignore[arg-type]


async def test_concurrent_batches_share_transactions(data_dir: Path) -> None:
    """Eight batches sent at once are all stored, in fewer transactions than batches."""
    writer = writer_for(data_dir)
    try:
        results = await asyncio.gather(*(writer.store(rows(f"b{batch}", 50), {}, 100.0) for batch in range(8)))
    finally:
        writer.close()

    with closing(connect(data_dir / DB_FILENAME)) as conn:
        stored = count_events(conn)
        counters = read_counters(conn)
    assert all(outcomes == ["accepted"] * 50 for outcomes in results)
    assert stored == 400
    assert counters[counter_key("events_accepted", app="app")] == 400
    assert writer.transactions < 8


async def test_failing_batch_rolls_back_alone(data_dir: Path) -> None:
    """A batch that breaks the schema gets the error; the batches beside it are stored with their counters."""
    broken = [*rows("bad", 3), dataclasses.replace(ROW, event_id="bad-x", type=None)]  # type: ignore[arg-type]
    rejected = {counter_key("events_rejected", app="app", reason="invalid_event"): 1}
    writer = writer_for(data_dir)
    try:
        results = await asyncio.gather(
            writer.store(rows("good", 5), rejected, 100.0),
            writer.store(broken, rejected, 100.0),
            writer.store(rows("late", 2), {}, 100.0),
            return_exceptions=True,
        )
    finally:
        writer.close()

    with closing(connect(data_dir / DB_FILENAME)) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM analytics_events")}
        counters = read_counters(conn)
    assert results[0] == ["accepted"] * 5
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert results[2] == ["accepted"] * 2
    assert stored == {f"good-{index}" for index in range(5)} | {"late-0", "late-1"}
    assert counters[counter_key("events_rejected", app="app", reason="invalid_event")] == 1
    assert counters[counter_key("events_accepted", app="app")] == 7


async def test_repeated_id_in_one_batch_is_a_duplicate(data_dir: Path) -> None:
    """The same event twice in a batch is stored once; a changed copy is a conflict."""
    first = dataclasses.replace(ROW, event_id="same")
    changed = dataclasses.replace(first, content_hash="other")
    writer = writer_for(data_dir)
    try:
        outcomes = await writer.store([first, first, changed], {}, 100.0)
    finally:
        writer.close()

    assert outcomes == ["accepted", "duplicate", "conflict"]


async def test_missing_store_fails_the_batch(tmp_path: Path) -> None:
    """When the store cannot be opened, the request gets the error and the next batch tries again."""
    attempts: list[int] = []

    def refuse() -> sqlite3.Connection:
        attempts.append(1)
        raise sqlite3.OperationalError("unable to open database file")

    writer = BatchWriter(refuse)
    try:
        with pytest.raises(sqlite3.OperationalError):
            await writer.store(rows("a", 1), {}, 100.0)
        with pytest.raises(sqlite3.OperationalError):
            await writer.store(rows("b", 1), {}, 100.0)
    finally:
        writer.close()
    assert len(attempts) == 2


async def test_idle_connection_is_closed_and_reopened(data_dir: Path) -> None:
    """After the idle timeout the connection is closed; the next batch opens a new one."""
    opened: list[sqlite3.Connection] = []

    def open_counted() -> sqlite3.Connection:
        conn = connect(data_dir / DB_FILENAME)
        opened.append(conn)
        return conn

    writer = BatchWriter(open_counted, idle_timeout=0.05)
    try:
        await writer.store(rows("a", 1), {}, 100.0)
        await asyncio.sleep(0.3)
        await writer.store(rows("b", 1), {}, 100.0)
    finally:
        writer.close()
    assert len(opened) == 2


async def test_closed_writer_rejects(data_dir: Path) -> None:
    writer = writer_for(data_dir)
    writer.close()
    with pytest.raises(WriterClosedError):
        await writer.store(rows("a", 1), {}, 100.0)
