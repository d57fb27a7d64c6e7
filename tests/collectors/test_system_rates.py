"""Byte rates of SystemCollector: first reading, counter reset and vanished devices.

Counters and the monotonic clock are scripted, so every rate is exact.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from collectors.base import Sample
from collectors.system import SystemCollector
from tests.collectors.fake_psutil import FakePsutil


class ScriptedCounters:
    """Disk and network counters and a monotonic clock that a test sets before each cycle."""

    def __init__(self) -> None:
        self.now = 100.0
        self.disks: dict[str, tuple[int, int]] = {}
        self.interfaces: dict[str, tuple[int, int]] = {}

    def monotonic(self) -> float:
        return self.now

    def disk_io_counters(self, perdisk: bool = False) -> dict[str, Any]:
        return {
            name: SimpleNamespace(read_bytes=read, write_bytes=written)
            for name, (read, written) in self.disks.items()
        }

    def net_io_counters(self, pernic: bool = False) -> dict[str, Any]:
        return {
            name: SimpleNamespace(bytes_recv=received, bytes_sent=sent)
            for name, (received, sent) in self.interfaces.items()
        }


def make_collector(counters: ScriptedCounters) -> SystemCollector:
    fake = FakePsutil(
        {"disk_io_counters": counters.disk_io_counters, "net_io_counters": counters.net_io_counters}
    )
    return SystemCollector(interval=5.0, psutil_module=fake, monotonic=counters.monotonic)


def rates(samples: list[Sample], name: str) -> dict[str, float]:
    """Return `{device or interface: value}` of the samples named `name`."""
    return {sample.labels[0][1]: sample.value for sample in samples if sample.name == name}


async def test_first_cycle_has_no_rate() -> None:
    """The first reading of a counter only sets the base, so no rate is reported."""
    counters = ScriptedCounters()
    counters.disks = {"vda": (1000, 2000)}
    counters.interfaces = {"eth0": (10, 20)}
    collector = make_collector(counters)

    samples = await collector.collect(time.time())

    assert rates(samples, "disk_read_bytes_per_second") == {}
    assert rates(samples, "net_recv_bytes_per_second") == {}


async def test_rate_is_delta_over_elapsed() -> None:
    """The second cycle reports the counter delta divided by the monotonic seconds between readings."""
    counters = ScriptedCounters()
    counters.disks = {"vda": (1000, 2000)}
    counters.interfaces = {"eth0": (10, 20)}
    collector = make_collector(counters)
    await collector.collect(time.time())

    counters.now += 2.0
    counters.disks = {"vda": (5000, 2000)}
    counters.interfaces = {"eth0": (210, 60)}
    samples = await collector.collect(time.time())

    assert rates(samples, "disk_read_bytes_per_second") == {"vda": 2000.0}
    assert rates(samples, "disk_write_bytes_per_second") == {"vda": 0.0}
    assert rates(samples, "net_recv_bytes_per_second") == {"eth0": 100.0}
    assert rates(samples, "net_sent_bytes_per_second") == {"eth0": 20.0}


async def test_counter_reset_skips_one_cycle() -> None:
    """A counter that went down emits no rate that cycle and is the base of the next one."""
    counters = ScriptedCounters()
    counters.interfaces = {"eth0": (1_000_000, 500)}
    collector = make_collector(counters)
    await collector.collect(time.time())

    counters.now += 5.0
    counters.interfaces = {"eth0": (300, 1000)}
    after_reset = await collector.collect(time.time())
    counters.now += 5.0
    counters.interfaces = {"eth0": (800, 1500)}
    next_cycle = await collector.collect(time.time())

    assert rates(after_reset, "net_recv_bytes_per_second") == {}
    assert rates(after_reset, "net_sent_bytes_per_second") == {"eth0": 100.0}
    assert rates(next_cycle, "net_recv_bytes_per_second") == {"eth0": 100.0}


async def test_vanished_device_dropped() -> None:
    """A device missing from a reading gets no rate, and on return starts again from a new base."""
    counters = ScriptedCounters()
    counters.disks = {"vda": (0, 0), "sdb": (0, 0)}
    collector = make_collector(counters)
    await collector.collect(time.time())

    counters.now += 1.0
    counters.disks = {"vda": (100, 0)}
    without_sdb = await collector.collect(time.time())
    counters.now += 1.0
    counters.disks = {"vda": (200, 0), "sdb": (9000, 0)}
    sdb_back = await collector.collect(time.time())

    assert rates(without_sdb, "disk_read_bytes_per_second") == {"vda": 100.0}
    assert rates(sdb_back, "disk_read_bytes_per_second") == {"vda": 100.0}


async def test_clock_not_advanced_no_rate() -> None:
    """Two readings at the same monotonic time give no rate rather than a division by zero."""
    counters = ScriptedCounters()
    counters.disks = {"vda": (0, 0)}
    collector = make_collector(counters)
    await collector.collect(time.time())

    counters.disks = {"vda": (100, 0)}
    samples = await collector.collect(time.time())

    assert rates(samples, "disk_read_bytes_per_second") == {}


async def test_virtual_disks_not_reported() -> None:
    """Loop, RAM and zram devices get no disk rates."""
    counters = ScriptedCounters()
    counters.disks = {"vda": (0, 0), "loop0": (0, 0), "ram0": (0, 0), "zram0": (0, 0)}
    collector = make_collector(counters)
    await collector.collect(time.time())

    counters.now += 1.0
    samples = await collector.collect(time.time())

    assert set(rates(samples, "disk_read_bytes_per_second")) == {"vda"}
