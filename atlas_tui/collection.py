"""The collection pipeline: collectors from the config, a scheduler, and store writes.

Both the daemon and the console's embedded mode run one `CollectionPipeline`. It
builds the collectors the config enables, runs them with `collectors.Scheduler`, and
writes each cycle's samples and the collector statuses to the store in the data
directory.

Invariants:

- The pipeline owns one store connection, opened in `run()` and closed when `run()`
  returns. Writes go through `asyncio.to_thread`, one at a time under a lock, so the
  connection is used by one thread at a time.
- A write that has started finishes before the connection closes, even when `run()`
  is cancelled. `stop()` returns after that write commits.
- `reconfigure()` swaps the collectors without closing the store: the old scheduler
  finishes its cycles in progress before the new one starts, so writes never overlap.
- Write listeners run on the event loop after each committed write and must not block.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from atlas_tui.config import Config
from collectors.app_health import AppHealthCollector
from collectors.base import Collector, CollectorStatus, Labels, Sample
from collectors.blockchain import NodeCollector, ReferenceBook
from collectors.http_probe import ProbeCollector
from collectors.scheduler import Scheduler
from collectors.self_health import SelfHealthCollector
from collectors.system import SystemCollector
from storage.db import open_store
from storage.metrics import write_samples
from storage.status import write_collector_statuses

__all__ = ["CollectionPipeline", "build_collectors"]

logger = logging.getLogger(__name__)

STATUS_WRITE_INTERVAL = 10.0
"""Seconds between status writes when no collector's error or unavailable sources changed."""


def build_collectors(
    config: Config, data_dir: Path, statuses: Callable[[], list[CollectorStatus]]
) -> tuple[list[Collector], dict[str, float]]:
    """Build the collectors the config enables and their cycle timeouts by name.

    The self-health collector always runs, on its own interval, so a host with host
    metrics switched off still reports collector and store health. Each configured
    node and probe gets its own collector (`node:<name>`, `probe:<name>`), and the
    nodes share one `ReferenceBook` so they can be each other's lag references.
    The `app_health` collector runs when the config lists analytics apps.
    """
    system = config.collectors.system
    collectors: list[Collector] = []
    if system.enabled:
        collectors.append(SystemCollector(interval=system.interval))
    references = ReferenceBook()
    network: list[NodeCollector | ProbeCollector] = [
        NodeCollector(node, references) for node in config.collectors.nodes
    ]
    network.extend(ProbeCollector(probe) for probe in config.collectors.probes)
    collectors.extend(network)
    health_interval = config.collectors.self_health.interval
    collectors.append(SelfHealthCollector(statuses, data_dir, interval=health_interval))
    if config.analytics.apps:
        collectors.append(AppHealthCollector(data_dir))
    timeouts = {SystemCollector.name: system.timeout}
    timeouts.update((collector.name, collector.cycle_timeout) for collector in network)
    return collectors, timeouts


class CollectionPipeline:
    """Run the configured collectors and store what they collect."""

    def __init__(self, config: Config, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        """Build the collectors and the scheduler; nothing is read or opened yet.

        Args:
            config: The loaded config; `collectors.system` sets interval and timeout.
            data_dir: Directory of the store, created by `run()` if missing.
            clock: Wall clock in UTC epoch seconds for sample timestamps.
        """
        self._data_dir = Path(data_dir)
        self._clock = clock
        self._scheduler = self._build_scheduler(config)
        self._stopping = False
        self._listeners: list[Callable[[list[Sample]], None]] = []
        self._conn: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._latest: dict[tuple[str, Labels], Sample] = {}
        self._started = False
        self._finished = asyncio.Event()
        self._statuses_written: tuple[object, ...] | None = None
        self._statuses_written_at = 0.0

    async def run(self) -> None:
        """Open the store and run the collectors until `stop()`; close the store after.

        Raises:
            storage.errors.StoreOpenError: the store cannot be opened.
            storage.errors.MigrationError: the store's schema cannot be migrated.
        """
        self._started = True
        try:
            self._conn = await asyncio.to_thread(open_store, self._data_dir)
            logger.info("collection started data_dir=%s", self._data_dir)
            while True:
                scheduler = self._scheduler
                await scheduler.run()
                # A reconfigure() stopped this scheduler and left its successor to run.
                if self._stopping or scheduler is self._scheduler:
                    break
        finally:
            await self._close()
            self._finished.set()

    async def stop(self) -> None:
        """Stop the collectors and return once `run()` has finished its last write."""
        self._stopping = True
        self._scheduler.stop()
        if self._started:
            await self._finished.wait()

    def reconfigure(self, config: Config) -> None:
        """Replace the collectors with those `config` enables; the store stays open.

        The current scheduler is asked to stop, and `run()` starts the new one once its
        cycles in progress have been written. Collector statuses start afresh.
        """
        old, self._scheduler = self._scheduler, self._build_scheduler(config)
        old.stop()
        logger.info("collectors reconfigured collectors=%s", ",".join(s.name for s in self._scheduler.statuses()))

    def add_write_listener(self, listener: Callable[[list[Sample]], None]) -> None:
        """Call `listener` with each cycle's samples after they are committed to the store."""
        self._listeners.append(listener)

    def statuses(self) -> list[CollectorStatus]:
        """Return copies of the collector statuses after their latest cycles."""
        return self._scheduler.statuses()

    def latest_samples(self) -> list[Sample]:
        """Return the newest stored sample of every series this pipeline has written.

        NOTE: a series that stopped (a removed disk or interface) keeps its last sample
        here until the pipeline is rebuilt. Compare `ts` with the interval to spot it.
        """
        return sorted(self._latest.values(), key=lambda sample: (sample.name, sample.labels))

    async def _write_cycle(self, samples: list[Sample]) -> None:
        """Write one cycle's samples and the current statuses. This is the scheduler's sink."""
        statuses = self._scheduler.statuses()
        now = self._clock()
        fingerprint = _status_fingerprint(statuses)
        write_statuses = (
            fingerprint != self._statuses_written
            or now - self._statuses_written_at >= STATUS_WRITE_INTERVAL
        )
        async with self._write_lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError(
                    "cannot write samples because the pipeline has stopped and closed its store"
                )
            await _finish_in_thread(_write, conn, samples, statuses if write_statuses else ())
        if write_statuses:
            self._statuses_written, self._statuses_written_at = fingerprint, now
        for sample in samples:
            self._latest[(sample.name, sample.labels)] = sample
        if samples:
            self._notify(samples)

    def _build_scheduler(self, config: Config) -> Scheduler:
        collectors, timeouts = build_collectors(config, self._data_dir, self.statuses)
        return Scheduler(collectors, self._write_cycle, timeouts=timeouts, clock=self._clock)

    def _notify(self, samples: list[Sample]) -> None:
        for listener in self._listeners:
            try:
                listener(samples)
            except Exception:  # noqa: BLE001 - worker boundary: a listener must not stop collection
                logger.exception("write listener failed listener=%r samples=%d", listener, len(samples))

    async def _close(self) -> None:
        async with self._write_lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await _finish_in_thread(conn.close)
                logger.info("collection stopped data_dir=%s", self._data_dir)


def _write(conn: sqlite3.Connection, samples: Sequence[Sample], statuses: Sequence[CollectorStatus]) -> None:
    """Write samples and, when given, statuses, each in its own transaction. Blocking."""
    if samples:
        write_samples(conn, samples)
    if statuses:
        write_collector_statuses(conn, statuses)


def _status_fingerprint(statuses: Sequence[CollectorStatus]) -> tuple[object, ...]:
    """Return what must reach the store at once when it changes: errors and unavailable sources."""
    return tuple(
        (status.name, status.last_error, status.failures, tuple(sorted(status.unavailable.items())))
        for status in statuses
    )


async def _finish_in_thread(function: Callable[..., object], *args: object) -> None:
    """Run `function` in a thread and wait for it to end, even if the caller is cancelled.

    A cancellation, however often it is requested, is raised once the thread has ended.

    Cancelling `asyncio.to_thread` does not stop the thread, so without this the lock
    around a write could be released, and the connection closed, while SQLite still
    runs the write.
    """
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    cancelled = False
    while True:
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            if work.done():
                raise
            cancelled = True
            continue
        break
    if cancelled:
        raise asyncio.CancelledError
