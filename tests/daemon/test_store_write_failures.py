"""A store that rejects writes shows in the collectors' statuses and in rate-limited ERROR lines.

The scheduler runs a real collector-like source into a real SQLite store. A SQLite
authorizer on the writing connection rejects inserts while `Gate.open` is false, so
the sink fails exactly as it does on a read-only or damaged store.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from atlas_tui.daemon import _RepeatedFailure
from collectors.base import Sample
from collectors.scheduler import STORE_WRITE_FAILED, ScheduledStatus, Scheduler, _FailureLog
from storage.db import open_store
from storage.metrics import latest, write_samples

CLOCK = 1_750_000_000.0
"""Wall clock the scheduler stamps cycles and failures with."""


class Ticker:
    """A collector that returns one sample per cycle."""

    name = "ticker"
    interval = 0.02

    async def collect(self, now: float) -> list[Sample]:
        """Return one `ticks` sample stamped `now`."""
        return [Sample.of("ticks", 1.0, now)]

    def unavailable_sources(self) -> Mapping[str, str]:
        """Report no unavailable sources."""
        return {}


class Gate:
    """An authorizer that rejects INSERT statements while `open` is false."""

    def __init__(self) -> None:
        self.open = False

    def __call__(self, action: int, *_args: object) -> int:
        if action == sqlite3.SQLITE_INSERT and not self.open:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, Gate]]:
    """A migrated store whose connection rejects inserts until the gate opens."""
    conn = open_store(tmp_path / "data")
    gate = Gate()
    conn.set_authorizer(gate)
    yield conn, gate
    conn.close()


def _status(scheduler: Scheduler) -> ScheduledStatus:
    return scheduler.statuses()[0]


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_rejected_write_in_status(store: tuple[sqlite3.Connection, Gate]) -> None:
    """While the store rejects writes, last_error reports it and store_write_failures counts them."""
    conn, _gate = store

    async def sink(samples: list[Sample]) -> None:
        await asyncio.to_thread(write_samples, conn, samples)

    scheduler = Scheduler([Ticker()], sink, clock=lambda: CLOCK)
    task = asyncio.create_task(scheduler.run())
    reached = await _until(lambda: _status(scheduler).store_write_failures >= 3)
    scheduler.stop()
    await task

    status = _status(scheduler)
    assert reached
    assert status.last_error == f"{STORE_WRITE_FAILED}DatabaseError: not authorized"
    assert status.last_store_error == "DatabaseError: not authorized"
    assert status.last_store_error_at == CLOCK
    assert scheduler.sink_failures() == {"ticker": status.store_write_failures}
    assert status.failures == 0


async def test_error_kept_between_writes(store: tuple[sqlite3.Connection, Gate]) -> None:
    """A cycle that collects fine does not clear the store error before its write succeeds."""
    conn, _gate = store
    seen: list[str | None] = []

    async def sink(samples: list[Sample]) -> None:
        seen.append(_status(scheduler).last_error)
        await asyncio.to_thread(write_samples, conn, samples)

    scheduler = Scheduler([Ticker()], sink, clock=lambda: CLOCK)
    task = asyncio.create_task(scheduler.run())
    await _until(lambda: len(seen) >= 4)
    scheduler.stop()
    await task

    assert seen[0] is None
    assert all(error is not None and error.startswith(STORE_WRITE_FAILED) for error in seen[1:])


async def test_recovery_clears_error(
    store: tuple[sqlite3.Connection, Gate], caplog: pytest.LogCaptureFixture
) -> None:
    """Once writes succeed again last_error clears, the count and last store error stay, and samples land."""
    caplog.set_level(logging.INFO, logger="collectors.scheduler")
    conn, gate = store

    async def sink(samples: list[Sample]) -> None:
        await asyncio.to_thread(write_samples, conn, samples)

    scheduler = Scheduler([Ticker()], sink, clock=lambda: CLOCK)
    task = asyncio.create_task(scheduler.run())
    await _until(lambda: _status(scheduler).store_write_failures >= 2)
    gate.open = True
    recovered = await _until(lambda: _status(scheduler).last_error is None)
    scheduler.stop()
    await task

    status = _status(scheduler)
    assert recovered
    assert status.store_write_failures >= 2
    assert status.last_store_error == "DatabaseError: not authorized"
    assert [row.name for row in latest(conn, "ticks")] == ["ticks"]
    assert any("store write recovered collector=ticker" in r.getMessage() for r in caplog.records)


async def test_repeats_not_logged_at_error(
    store: tuple[sqlite3.Connection, Gate], caplog: pytest.LogCaptureFixture
) -> None:
    """Many failures with one error within a minute give one ERROR line, naming the collector."""
    caplog.set_level(logging.DEBUG, logger="collectors.scheduler")
    conn, _gate = store

    async def sink(samples: list[Sample]) -> None:
        await asyncio.to_thread(write_samples, conn, samples)

    scheduler = Scheduler([Ticker()], sink, clock=lambda: CLOCK)
    task = asyncio.create_task(scheduler.run())
    await _until(lambda: _status(scheduler).store_write_failures >= 5)
    scheduler.stop()
    await task

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "store write failed collector=ticker" in errors[0]
    assert "not authorized" in errors[0]


def test_failure_log_policy() -> None:
    """The first failure, a changed error and the first repeat after the interval are logged."""
    log = _FailureLog(interval=60.0)

    assert log.observe("locked", now=0.0) == 0
    assert log.observe("locked", now=10.0) is None
    assert log.observe("locked", now=20.0) is None
    assert log.observe("locked", now=60.0) == 2
    assert log.observe("malformed", now=61.0) == 0
    assert log.observe("malformed", now=62.0) is None


def test_repeated_failure_once_a_minute(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """The daemon's heartbeat and maintenance failures log ERROR again after a minute, with a count."""
    caplog.set_level(logging.DEBUG, logger="atlas_tui.daemon")
    failures = _RepeatedFailure("heartbeat", interval=60.0)
    error = sqlite3.OperationalError("disk I/O error")

    for now in (0.0, 5.0, 10.0, 65.0):
        failures.failed(error, data_dir=tmp_path, now=now)

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert errors[0].startswith("heartbeat failed")
    assert "still failing failures=4 not_logged=2" in errors[1]
