"""The collector scheduler: one asyncio task per collector, each on its own interval.

The daemon and the console's embedded mode build a `Scheduler` over their collectors
and a sink (usually a function that writes the samples to the store). Each task runs
its collector's cycle under a timeout, records the outcome in a `ScheduledStatus` and
then awaits the sink.

Invariants:

- A collector that raises, hangs or is slow never delays another collector: each has
  its own task, and a cycle that outlives its timeout is cancelled and counted.
- Cycles start on the grid `start + k * interval` of the collector's own start time.
  A cycle that overruns skips the ticks it missed rather than running them in a burst.
- The scheduler is the only place in `collectors` that reads the clock: `clock()`
  stamps each cycle and the event loop's monotonic time drives the schedule.
- The sink is awaited once per cycle, with an empty list when the cycle failed, so a
  sink that also persists statuses receives every outcome. A failing sink is never
  fatal. It is counted in the collector's `ScheduledStatus`, whose `last_error` reads
  "store write failed: ..." until a sink call with samples succeeds. It is logged at
  ERROR when it starts or its error changes, then once per `FAILURE_LOG_INTERVAL`
  with the number of failures in between.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from collectors.base import Collector, CollectorStatus, Sample

__all__ = [
    "FAILURE_LOG_INTERVAL",
    "MAX_DEFAULT_TIMEOUT",
    "STORE_WRITE_FAILED",
    "ScheduledStatus",
    "Scheduler",
    "default_timeout",
]

logger = logging.getLogger(__name__)

MAX_DEFAULT_TIMEOUT = 10.0
"""Upper bound in seconds of the timeout given to a collector without an explicit one."""

CANCEL_GRACE = 1.0
"""Seconds `run()` waits for a cancelled cycle to end before abandoning it at stop."""

FAILURE_LOG_INTERVAL = 60.0
"""Seconds between ERROR lines while a sink keeps failing with the same error."""

STORE_WRITE_FAILED = "store write failed: "
"""Prefix of `last_error` while the sink fails for a collector."""

Sink = Callable[[list[Sample]], Awaitable[None]]
"""Receiver of one cycle's samples."""


@dataclass(slots=True)
class ScheduledStatus(CollectorStatus):
    """A collector's status plus the outcome of handing its samples to the sink (the store)."""

    store_write_failures: int = 0
    """Sink calls for this collector that raised since the scheduler began."""
    last_store_error: str | None = None
    """Error of the latest failed sink call, kept after the sink recovers."""
    last_store_error_at: float | None = None
    """UTC epoch seconds of the latest failed sink call."""


def default_timeout(interval: float) -> float:
    """Return the cycle timeout for `interval`: 80 % of it, at most `MAX_DEFAULT_TIMEOUT`."""
    return min(interval * 0.8, MAX_DEFAULT_TIMEOUT)


class Scheduler:
    """Run collectors on their intervals and hand each cycle's samples to a sink."""

    def __init__(
        self,
        collectors: Iterable[Collector],
        sink: Sink,
        timeouts: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a scheduler; nothing runs until `run()`.

        Args:
            collectors: Collectors with distinct names.
            sink: Coroutine function awaited with each cycle's samples.
            timeouts: Seconds per collector name; others get `default_timeout(interval)`.
            clock: Wall clock in UTC epoch seconds, passed to `collect(now)`.

        Raises:
            ValueError: two collectors share a name.
        """
        self._collectors = list(collectors)
        names = [collector.name for collector in self._collectors]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(
                f"collector names must be unique, got duplicates: {', '.join(duplicates)}. "
                "Give each collector its own name"
            )

        timeouts = timeouts or {}
        self._sink = sink
        self._clock = clock
        self._timeouts = {
            c.name: timeouts.get(c.name, default_timeout(c.interval)) for c in self._collectors
        }
        self._statuses = {c.name: ScheduledStatus(name=c.name, interval=c.interval) for c in self._collectors}
        self._failure_streaks = dict.fromkeys(names, 0)
        self._sink_streaks = dict.fromkeys(names, 0)
        self._sink_logs = {name: _FailureLog() for name in names}
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Run every collector until `stop()` is called.

        Returns promptly after `stop()`: sleeping tasks wake up, running cycles are
        cancelled, and a sink call in progress is allowed to finish.
        """
        logger.info("scheduler started collectors=%s", ",".join(self._statuses))
        tasks = [
            asyncio.create_task(self._run_collector(collector), name=f"collector-{collector.name}")
            for collector in self._collectors
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            logger.info("scheduler stopped")

    def stop(self) -> None:
        """Ask `run()` to return; safe to call more than once and before `run()`."""
        self._stop.set()

    def statuses(self) -> list[ScheduledStatus]:
        """Return copies of every collector's status, in the order the collectors were given."""
        return [replace(status, unavailable=dict(status.unavailable)) for status in self._statuses.values()]

    def sink_failures(self) -> dict[str, int]:
        """Return the number of failed sink calls per collector name."""
        return {name: status.store_write_failures for name, status in self._statuses.items()}

    async def _run_collector(self, collector: Collector) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not self._stop.is_set():
            samples = await self._run_cycle(collector)
            if samples is None:
                return
            await self._deliver(collector.name, samples)
            self._statuses[collector.name].deliveries += 1
            delay = _next_tick(start, collector.interval, loop.time()) - loop.time()
            if await self._wait_for_stop(delay):
                return

    async def _run_cycle(self, collector: Collector) -> list[Sample] | None:
        """Run one cycle and record it; return its samples, or None when stop interrupted it."""
        status = self._statuses[collector.name]
        timeout = self._timeouts[collector.name]
        now = self._clock()
        status.runs += 1
        status.last_run = now
        began = time.perf_counter()

        attempt = asyncio.ensure_future(asyncio.wait_for(collector.collect(now), timeout))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({attempt, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            interrupted = not attempt.done()
            if interrupted:
                await _abandon(attempt, collector.name)
        if interrupted:
            return None

        duration_ms = (time.perf_counter() - began) * 1000.0
        samples = self._record(collector, status, attempt, timeout, duration_ms)
        status.unavailable = _unavailable_of(collector)
        return samples

    def _record(
        self,
        collector: Collector,
        status: ScheduledStatus,
        attempt: asyncio.Future[list[Sample]],
        timeout: float,
        duration_ms: float,
    ) -> list[Sample]:
        """Store the cycle's outcome in `status` and return the samples to deliver."""
        status.last_duration_ms = duration_ms
        try:
            samples = list(attempt.result())
        except TimeoutError:
            self._record_failure(status, f"timed out after {timeout:g}s")
            return []
        except asyncio.CancelledError:
            self._record_failure(status, "CancelledError: the collector cancelled its own cycle")
            return []
        # A worker boundary: any error of one collector becomes its status, not a crash.
        except Exception as err:
            self._record_failure(status, f"{type(err).__name__}: {err}")
            return []

        failed_cycles = self._failure_streaks[collector.name]
        if failed_cycles:
            logger.info("collector recovered collector=%s failed_cycles=%d", collector.name, failed_cycles)
        self._failure_streaks[collector.name] = 0
        # A store error stays visible until a write succeeds, not only until the
        # next cycle collects, so a broken store never looks healthy between writes.
        status.last_error = _format_store_error(status) if self._sink_streaks[collector.name] else None
        status.last_sample_count = len(samples)
        logger.debug(
            "cycle done collector=%s samples=%d duration_ms=%.1f", collector.name, len(samples), duration_ms
        )
        return samples

    def _record_failure(self, status: ScheduledStatus, error: str) -> None:
        # Log a failure when it starts or changes, so a collector that fails every
        # cycle writes one warning rather than one per cycle.
        level = logging.DEBUG if status.last_error == error else logging.WARNING
        logger.log(level, "collector failed collector=%s error=%s", status.name, error)
        self._failure_streaks[status.name] += 1
        status.failures += 1
        status.last_error = error
        status.last_sample_count = 0

    async def _deliver(self, name: str, samples: list[Sample]) -> None:
        # A worker boundary: a store error loses this cycle's samples but not the schedule.
        try:
            await self._sink(samples)
        except Exception as err:
            self._record_sink_failure(name, len(samples), err)
            return
        # A call without samples may write nothing at all, so it does not prove
        # that the store accepts writes again.
        if samples and self._sink_streaks[name]:
            self._record_sink_recovery(name)

    def _record_sink_failure(self, name: str, sample_count: int, err: Exception) -> None:
        status = self._statuses[name]
        detail = f"{type(err).__name__}: {err}"
        self._sink_streaks[name] += 1
        status.store_write_failures += 1
        status.last_store_error = detail
        status.last_store_error_at = self._clock()
        status.last_error = _format_store_error(status)

        unlogged = self._sink_logs[name].observe(detail, asyncio.get_running_loop().time())
        streak = self._sink_streaks[name]
        if unlogged is None:
            logger.debug("store write failed again collector=%s failures=%d error=%s", name, streak, detail)
        elif streak == 1:
            logger.error(
                "store write failed collector=%s samples=%d error=%s",
                name,
                sample_count,
                detail,
                exc_info=err,
            )
        else:
            logger.error(
                "store write still failing collector=%s failures=%d not_logged=%d error=%s",
                name,
                streak,
                unlogged,
                detail,
            )

    def _record_sink_recovery(self, name: str) -> None:
        status = self._statuses[name]
        logger.info("store write recovered collector=%s failed_calls=%d", name, self._sink_streaks[name])
        self._sink_streaks[name] = 0
        self._sink_logs[name] = _FailureLog()
        if status.last_error is not None and status.last_error.startswith(STORE_WRITE_FAILED):
            status.last_error = None

    async def _wait_for_stop(self, delay: float) -> bool:
        """Sleep for `delay` seconds or until `stop()`; return True when stopped."""
        if delay > 0:
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass
        return self._stop.is_set()


class _FailureLog:
    """Choose which failures of a repeating error to log, so a broken store logs once a minute.

    `observe` lets through the first failure, every change of the error text, and
    then one failure per `interval` seconds.
    """

    def __init__(self, interval: float = FAILURE_LOG_INTERVAL) -> None:
        self.interval = interval
        self.error: str | None = None
        self.logged_at = -math.inf
        self.unlogged = 0

    def observe(self, error: str, now: float) -> int | None:
        """Record a failure at monotonic `now` and decide whether to log it.

        Returns:
            None to skip this failure, else the failures skipped since the last logged one.
        """
        changed = error != self.error
        self.error = error
        if not changed and now - self.logged_at < self.interval:
            self.unlogged += 1
            return None
        unlogged, self.unlogged, self.logged_at = self.unlogged, 0, now
        return unlogged


def _format_store_error(status: ScheduledStatus) -> str:
    return f"{STORE_WRITE_FAILED}{status.last_store_error}"


def _next_tick(start: float, interval: float, now: float) -> float:
    """Return the first grid time `start + k * interval` after `now`."""
    ticks = math.floor((now - start) / interval) + 1
    return start + ticks * interval


async def _abandon(attempt: asyncio.Future[list[Sample]], name: str) -> None:
    """Cancel a running cycle and wait briefly for it to end."""
    attempt.cancel()
    done, _ = await asyncio.wait({attempt}, timeout=CANCEL_GRACE)
    if not done:
        logger.warning("cycle abandoned after ignoring cancellation collector=%s", name)
        attempt.add_done_callback(lambda future: future.cancelled() or future.exception())


def _unavailable_of(collector: Collector) -> dict[str, str]:
    """Return the collector's unavailable sources, or an empty mapping when `unavailable_sources()` raises."""
    # A worker boundary: a faulty report of sources must not hide the cycle's outcome.
    try:
        return dict(collector.unavailable_sources())
    except Exception as err:
        logger.warning("unavailable_sources failed collector=%s error=%s", collector.name, err)
        return {}
