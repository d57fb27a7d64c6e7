"""Scheduler: independent collectors, timeouts, failures, missed ticks, sink errors and stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

import pytest

from collectors.base import CollectorStatus, Sample
from collectors.scheduler import Scheduler, default_timeout

INTERVAL = 0.05


class Healthy:
    """Returns one sample per cycle and records when each cycle started."""

    def __init__(self, name: str = "healthy", interval: float = INTERVAL, duration: float = 0.0) -> None:
        self.name = name
        self.interval = interval
        self.duration = duration
        self.starts: list[float] = []

    async def collect(self, now: float) -> list[Sample]:
        self.starts.append(asyncio.get_running_loop().time())
        if self.duration and len(self.starts) == 1:
            await asyncio.sleep(self.duration)
        return [Sample.of("cycle", len(self.starts), now)]

    def unavailable_sources(self) -> Mapping[str, str]:
        return {"cpu_freq": "not provided by psutil on this platform"}


class Raising:
    """Raises OSError on every cycle."""

    name = "raising"
    interval = INTERVAL

    async def collect(self, now: float) -> list[Sample]:
        raise OSError("boom")

    def unavailable_sources(self) -> Mapping[str, str]:
        return {}


class Hanging:
    """Never returns from `collect`."""

    name = "hanging"
    interval = INTERVAL

    async def collect(self, now: float) -> list[Sample]:
        await asyncio.Event().wait()
        return []

    def unavailable_sources(self) -> Mapping[str, str]:
        return {}


class RecordingSink:
    """Keeps every batch it receives and raises `error` when it is set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.batches: list[list[Sample]] = []
        self.error = error

    async def __call__(self, samples: list[Sample]) -> None:
        self.batches.append(samples)
        if self.error is not None:
            raise self.error


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `condition` every 10 ms until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def status_of(scheduler: Scheduler, name: str) -> CollectorStatus:
    return next(status for status in scheduler.statuses() if status.name == name)


async def stop_within(scheduler: Scheduler, task: asyncio.Task[None], seconds: float) -> float:
    """Stop the scheduler, fail if `run()` takes longer than `seconds`, and return the time taken."""
    began = time.monotonic()
    scheduler.stop()
    await asyncio.wait_for(task, seconds)
    return time.monotonic() - began


async def test_failures_isolated(caplog: pytest.LogCaptureFixture) -> None:
    """A raising and a hanging collector neither stop nor delay a healthy one."""
    caplog.set_level(logging.DEBUG, logger="collectors.scheduler")
    healthy = Healthy()
    # With a timeout ten times the interval, a scheduler that ran collectors in turn
    # would leave gaps of at least 0.5 s between healthy cycles.
    scheduler = Scheduler([healthy, Raising(), Hanging()], RecordingSink(), timeouts={"hanging": 0.5})
    task = asyncio.create_task(scheduler.run())

    await wait_until(lambda: status_of(scheduler, "hanging").failures >= 2)
    await stop_within(scheduler, task, 1.0)

    gaps = [later - earlier for earlier, later in zip(healthy.starts, healthy.starts[1:])]
    assert len(healthy.starts) >= 10
    assert max(gaps) < 0.3
    assert status_of(scheduler, "healthy").failures == 0
    assert status_of(scheduler, "healthy").last_error is None


async def test_hanging_reported_timed_out() -> None:
    """A cycle that outlives its timeout is counted and reported as timed out."""
    scheduler = Scheduler([Hanging()], RecordingSink(), timeouts={"hanging": 0.05})
    task = asyncio.create_task(scheduler.run())

    await wait_until(lambda: status_of(scheduler, "hanging").failures >= 2)
    await stop_within(scheduler, task, 1.0)

    status = status_of(scheduler, "hanging")
    assert status.last_error == "timed out after 0.05s"
    assert status.last_sample_count == 0


async def test_raising_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Each failed cycle is counted, but a repeated error is logged as a warning only once."""
    caplog.set_level(logging.DEBUG, logger="collectors.scheduler")
    scheduler = Scheduler([Raising()], RecordingSink())
    task = asyncio.create_task(scheduler.run())

    await wait_until(lambda: status_of(scheduler, "raising").failures >= 3)
    await stop_within(scheduler, task, 1.0)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "collector=raising" in r.getMessage()]
    assert status_of(scheduler, "raising").last_error == "OSError: boom"
    assert [r.getMessage() for r in warnings] == ["collector failed collector=raising error=OSError: boom"]


async def test_stop_during_hanging_cycle() -> None:
    """`run()` returns promptly after `stop()` even while a cycle hangs under a long timeout."""
    hanging = Hanging()
    scheduler = Scheduler([hanging], RecordingSink(), timeouts={"hanging": 30.0})
    task = asyncio.create_task(scheduler.run())
    await wait_until(lambda: status_of(scheduler, "hanging").runs >= 1)

    elapsed = await stop_within(scheduler, task, 1.0)

    assert elapsed < 0.5
    assert status_of(scheduler, "hanging").failures == 0


async def test_stop_before_run() -> None:
    """A scheduler stopped before `run()` returns at once without running a cycle."""
    healthy = Healthy()
    scheduler = Scheduler([healthy], RecordingSink())
    scheduler.stop()

    await asyncio.wait_for(scheduler.run(), 1.0)

    assert healthy.starts == []


async def test_missed_ticks_skipped() -> None:
    """After an overrun the next cycle waits for the next tick instead of catching up in a burst."""
    slow_first = Healthy(interval=0.05, duration=0.12)
    scheduler = Scheduler([slow_first], RecordingSink(), timeouts={"healthy": 1.0})
    task = asyncio.create_task(scheduler.run())

    await wait_until(lambda: len(slow_first.starts) >= 4)
    await stop_within(scheduler, task, 1.0)

    offsets = [start - slow_first.starts[0] for start in slow_first.starts]
    gaps = [later - earlier for earlier, later in zip(offsets, offsets[1:])]
    # The first cycle ends at 0.12 s, so the ticks at 0.05 s and 0.10 s are skipped.
    assert offsets[1] >= 0.14
    assert min(gaps[1:]) >= 0.025


async def test_sink_receives_samples_and_failures() -> None:
    """The sink gets each successful cycle's samples, and an empty batch for a failed cycle."""
    sink = RecordingSink()
    scheduler = Scheduler([Healthy(), Raising()], sink)
    task = asyncio.create_task(scheduler.run())

    await wait_until(lambda: len(sink.batches) >= 4)
    await stop_within(scheduler, task, 1.0)

    assert any(batch and batch[0].name == "cycle" for batch in sink.batches)
    assert [] in sink.batches


async def test_sink_error_counted(caplog: pytest.LogCaptureFixture) -> None:
    """A failing sink is counted and logged once, and collection goes on."""
    caplog.set_level(logging.DEBUG, logger="collectors.scheduler")
    healthy = Healthy()
    scheduler = Scheduler([healthy], RecordingSink(error=RuntimeError("database is locked")))
    task = asyncio.create_task(scheduler.run())

    await wait_until(lambda: len(healthy.starts) >= 3)
    await stop_within(scheduler, task, 1.0)

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert scheduler.sink_failures()["healthy"] >= 2
    assert len(errors) == 1
    assert "collector=healthy" in errors[0].getMessage()


async def test_status_after_success() -> None:
    """A successful cycle records its start time, sample count and the collector's unavailable sources."""
    scheduler = Scheduler([Healthy()], RecordingSink(), clock=lambda: 1_700_000_000.0)
    task = asyncio.create_task(scheduler.run())

    await wait_until(lambda: status_of(scheduler, "healthy").last_duration_ms is not None)
    await stop_within(scheduler, task, 1.0)

    status = status_of(scheduler, "healthy")
    assert status.last_run == 1_700_000_000.0
    assert status.last_sample_count == 1
    assert status.unavailable == {"cpu_freq": "not provided by psutil on this platform"}


def test_statuses_are_copies() -> None:
    """Changing a returned status does not change the scheduler's own."""
    scheduler = Scheduler([Healthy()], RecordingSink())

    scheduler.statuses()[0].unavailable["disk"] = "changed"
    scheduler.statuses()[0].failures = 99

    assert scheduler.statuses()[0].unavailable == {}
    assert scheduler.statuses()[0].failures == 0


def test_duplicate_names_rejected() -> None:
    """Two collectors with one name are rejected, since their statuses would collide."""
    with pytest.raises(ValueError, match="duplicates: healthy"):
        Scheduler([Healthy(), Healthy()], RecordingSink())


def test_default_timeout() -> None:
    """The default timeout is 80 % of the interval, capped at 10 s."""
    assert default_timeout(5.0) == 4.0
    assert default_timeout(60.0) == 10.0
