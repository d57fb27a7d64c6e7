"""SystemCollector against the real psutil of this machine."""

from __future__ import annotations

import asyncio
import time

import psutil

from collectors.base import Sample
from collectors.system import SystemCollector

RATE_METRICS = (
    "disk_read_bytes_per_second",
    "disk_write_bytes_per_second",
    "net_recv_bytes_per_second",
    "net_sent_bytes_per_second",
)


def values(samples: list[Sample], name: str, **labels: str) -> list[float]:
    """Return the values of samples named `name` whose labels are exactly `labels`."""
    wanted = tuple(sorted(labels.items()))
    return [sample.value for sample in samples if sample.name == name and sample.labels == wanted]


async def two_cycles() -> tuple[list[Sample], list[Sample]]:
    collector = SystemCollector(interval=0.05)
    first = await collector.collect(time.time())
    await asyncio.sleep(0.05)
    second = await collector.collect(time.time())
    return first, second


async def test_real_host_core_metrics() -> None:
    """The first cycle on this host reports CPU, memory, the root file system and processes."""
    first, _ = await two_cycles()

    [cpu] = values(first, "cpu_usage")
    [memory] = values(first, "memory_usage")
    [root] = values(first, "disk_usage", mount="/")
    [processes] = values(first, "process_count")
    assert 0.0 <= cpu <= 100.0
    assert 0.0 < memory <= 100.0
    assert 0.0 < root <= 100.0
    assert processes >= 1


async def test_real_host_per_core_usage() -> None:
    """Every logical CPU gets its own `cpu_core_usage{cpu}` sample within 0..100 %."""
    first, _ = await two_cycles()

    per_core = {
        sample.label_dict["cpu"]: sample.value
        for sample in first
        if sample.name == "cpu_core_usage"
    }
    assert sorted(per_core, key=int) == [str(index) for index in range(psutil.cpu_count())]
    assert all(0.0 <= value <= 100.0 for value in per_core.values())


async def test_real_host_rates() -> None:
    """Rates appear from the second cycle on, never below zero."""
    first, second = await two_cycles()

    first_rates = [sample for sample in first if sample.name in RATE_METRICS]
    second_rates = [sample for sample in second if sample.name in RATE_METRICS]
    assert first_rates == []
    assert values(second, "net_recv_bytes_per_second", interface="lo") != []
    assert all(sample.value >= 0 for sample in second_rates)


async def test_real_host_timestamps() -> None:
    """Every sample carries the `now` passed to `collect`."""
    collector = SystemCollector(interval=0.05)
    now = time.time()

    samples = await collector.collect(now)

    assert {sample.ts for sample in samples} == {now}
