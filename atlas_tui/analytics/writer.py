"""Group commit for analytics ingestion: the batches of concurrent requests share one transaction.

Requests await `BatchWriter.store`. One write is in flight at a time, on one writer
thread. The batches that arrive meanwhile wait in a queue and go into the next
transaction together, a savepoint each. Each request is resolved after COMMIT. So a
response is only ever sent for a committed batch, a batch that fails rolls back
alone, and concurrent requests pay for one commit instead of queueing for the write
lock one by one.

The thread lets the event loop parse and check the next batches while SQLite works.
Python's sqlite3 module lets go of the GIL while a statement steps, so the inserts
use one multi-row statement per 100 rows (`storage.events.insert_events`): with
`executemany`, the thread would wait for the GIL once per row.

Invariants: only the writer thread touches its connection. A batch's counters are
added only when its savepoint was released. The connection is closed after
`idle_timeout` seconds without a batch, so an idle daemon holds no extra connection.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from storage.db import transaction
from storage.events import CounterKey, EventRow, StoreOutcome, add_counters, insert_events

__all__ = ["DEFAULT_MAX_ROWS", "BatchWriter", "WriterClosedError"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 5000
"""Rows one transaction takes at most before the writer commits and starts the next."""


class WriterClosedError(RuntimeError):
    """`store` was called after `close`."""


@dataclass
class _Job:
    rows: Sequence[EventRow]
    counts: Mapping[CounterKey, int]
    now: float
    future: asyncio.Future[list[StoreOutcome]]


class BatchWriter:
    """Stores prepared batches on one thread, all waiting batches per transaction.

    Args:
        connect: Opens the store connection the writer uses.
        max_rows: Rows per transaction at most (a single larger batch still goes in whole).
        idle_timeout: Seconds without a batch after which the connection is closed.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        idle_timeout: float = 30.0,
    ) -> None:
        self._connect = connect
        self._max_rows = max_rows
        self._idle_timeout = idle_timeout
        self._queue: list[_Job] = []
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics-writer")
        self._writing = False
        self._idle_handle: asyncio.TimerHandle | None = None
        self._closed = False
        self.transactions = 0
        """Transactions committed so far, for tests and the benchmark."""

    async def store(self, rows: Sequence[EventRow], counts: Mapping[CounterKey, int], now: float) -> list[StoreOutcome]:
        """Store one batch with whatever else is waiting; return its outcomes after COMMIT.

        Raises:
            WriterClosedError: after `close`.
            sqlite3.Error, StorageError: the store could not be opened or the batch
                could not be written; nothing of the batch is stored.
        """
        if self._closed:
            raise WriterClosedError("the analytics writer is closed")
        loop = asyncio.get_running_loop()
        job = _Job(rows, counts, now, loop.create_future())
        self._queue.append(job)
        if not self._writing:
            self._start_write(loop)
        return await job.future

    def close(self) -> None:
        """Close the connection once the write in flight ends and stop the thread; later `store` calls raise."""
        self._closed = True
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._executor.submit(self._close_connection)
        self._executor.shutdown(wait=True)

    def _start_write(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs, rows = [], 0
        while self._queue and (not jobs or rows + len(self._queue[0].rows) <= self._max_rows):
            job = self._queue.pop(0)
            jobs.append(job)
            rows += len(job.rows)
        self._writing = True
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        written = loop.run_in_executor(self._executor, self._write, jobs)
        written.add_done_callback(lambda done: self._written(loop, jobs, done))

    def _written(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job], done: asyncio.Future[list[object]]) -> None:
        self._writing = False
        results: list[object] = done.result()
        for job, result in zip(jobs, results):
            if job.future.done():
                continue  # The request was cancelled; its batch is stored and a resend reports duplicates.
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)  # type: ignore[arg-type]
        if self._queue:
            self._start_write(loop)
        elif not self._closed:
            self._idle_handle = loop.call_later(self._idle_timeout, self._close_idle, loop)

    def _write(self, jobs: list[_Job]) -> list[object]:
        """Write the jobs in one transaction on the writer thread; return an outcome list or an error per job."""
        if self._conn is None:
            try:
                self._conn = self._connect()
            except Exception as err:  # noqa: BLE001 - each waiting request gets a 503 with it
                logger.error("analytics writer cannot open the store: %s", err)
                return [err] * len(jobs)
        conn = self._conn
        results: list[object] = []
        try:
            with transaction(conn):
                totals: Counter[CounterKey] = Counter()
                for job in jobs:
                    batch_totals: Counter[CounterKey] = Counter(job.counts)
                    try:
                        with transaction(conn):
                            outcomes = insert_events(conn, job.rows, batch_totals)
                    except Exception as err:  # noqa: BLE001 - the batch's request gets the error; the others go on
                        logger.error("analytics batch rolled back rows=%d: %r", len(job.rows), err)
                        results.append(err)
                        continue
                    totals.update(batch_totals)
                    results.append(outcomes)
                add_counters(conn, totals, max(job.now for job in jobs))
        except Exception as err:  # noqa: BLE001 - every waiting request gets the error
            logger.error("analytics write transaction failed batches=%d: %r", len(jobs), err)
            # A connection that failed mid-transaction is opened anew for the next batch.
            self._close_connection()
            return [err] * len(jobs)
        self.transactions += 1
        return results

    def _close_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._idle_handle = None
        if not self._queue and not self._writing:
            self._writing = True
            closed = loop.run_in_executor(self._executor, self._close_connection)
            closed.add_done_callback(lambda _done: self._reopened(loop))

    def _reopened(self, loop: asyncio.AbstractEventLoop) -> None:
        self._writing = False
        if self._queue:
            self._start_write(loop)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
