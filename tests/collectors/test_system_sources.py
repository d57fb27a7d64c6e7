"""SystemCollector on hosts where optional or broken sources raise or report nothing.

Each case runs three cycles against real psutil with one function replaced, as on
virtual machines, containers and locked-down hosts.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from collectors.base import CollectorError, Sample
from collectors.system import SystemCollector
from tests.collectors.fake_psutil import (
    CpuFrequency,
    FakePsutil,
    Partition,
    Swap,
    Temperature,
    outcomes,
    raises,
    returns,
)

CYCLES = 3
DOCKER_MOUNT = "/var/lib/docker/btrfs"


def partitions() -> list[Partition]:
    """Return `/`, a bind-mounted file and a mount whose usage cannot be read."""
    return [
        Partition("/dev/vda1", "/", "ext4", "rw"),
        Partition("/dev/vdb1", "/etc/hostname", "ext4", "rw,bind"),
        Partition("/dev/vdc1", DOCKER_MOUNT, "btrfs", "rw"),
    ]


def disk_usage(path: str) -> Any:
    """Return the real usage of `/` and raise PermissionError for the docker mount."""
    if path == DOCKER_MOUNT:
        raise PermissionError(errno.EACCES, "Permission denied", path)
    return psutil.disk_usage("/" if path == "/" else path)


async def run_cycles(fake: FakePsutil) -> tuple[list[list[Sample]], SystemCollector]:
    collector = SystemCollector(interval=0.05, psutil_module=fake, slow_source_period=0)
    cycles = [await collector.collect(time.time()) for _ in range(CYCLES)]
    return cycles, collector


def names(samples: list[Sample]) -> set[str]:
    return {sample.name for sample in samples}


def mounts(samples: list[Sample]) -> set[str]:
    return {sample.label_dict["mount"] for sample in samples if sample.name == "disk_usage"}


def unavailable_logs(caplog: pytest.LogCaptureFixture, source: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "collectors.system"
        and record.getMessage().startswith("source unavailable")
        and f"source={source} " in record.getMessage()
    ]


VARIANTS: dict[str, tuple[dict[str, Callable[..., Any]], set[str], str, str]] = {
    # id: (replacements, missing functions, failing source, metric it must not emit)
    "cpu_freq FileNotFoundError": (
        {"cpu_freq": raises(FileNotFoundError(errno.ENOENT, "No such file or directory"))},
        set(), "cpu_freq", "cpu_frequency_mhz",
    ),
    "cpu_freq EBUSY": (
        {"cpu_freq": raises(OSError(errno.EBUSY, "Device or resource busy"))},
        set(), "cpu_freq", "cpu_frequency_mhz",
    ),
    "cpu_freq None": ({"cpu_freq": returns(None)}, set(), "cpu_freq", "cpu_frequency_mhz"),
    "cpu_freq 0 MHz": (
        {"cpu_freq": returns(CpuFrequency(0.0, 0.0, 0.0))},
        set(), "cpu_freq", "cpu_frequency_mhz",
    ),
    "cpu_freq missing": ({}, {"cpu_freq"}, "cpu_freq", "cpu_frequency_mhz"),
    "sensors ENODEV": (
        {"sensors_temperatures": raises(OSError(errno.ENODEV, "No such device"))},
        set(), "sensors_temperatures", "temperature_celsius",
    ),
    "sensors empty": ({"sensors_temperatures": returns({})}, set(), "sensors_temperatures", "temperature_celsius"),
    "sensors missing": ({}, {"sensors_temperatures"}, "sensors_temperatures", "temperature_celsius"),
    "disk_partitions PermissionError": (
        {"disk_partitions": raises(PermissionError(errno.EACCES, "Permission denied"))},
        set(), "disk_partitions", "disk_usage",
    ),
    "no swap": ({"swap_memory": returns(Swap(0, 0, 0, 0.0, 0, 0))}, set(), "swap_memory", "swap_usage"),
}


@pytest.mark.parametrize("variant", VARIANTS.keys())
async def test_failing_source_skipped(variant: str, caplog: pytest.LogCaptureFixture) -> None:
    """A failing source is left out and logged once, while CPU, memory and `/` stay in every cycle."""
    replacements, missing, source, metric = VARIANTS[variant]
    caplog.set_level(logging.DEBUG, logger="collectors.system")

    cycles, collector = await run_cycles(FakePsutil(replacements, missing))

    for samples in cycles:
        assert "cpu_usage" in names(samples)
        assert "memory_usage" in names(samples)
        assert metric not in names(samples)
        if metric != "disk_usage":
            assert "/" in mounts(samples)
    assert source in collector.unavailable_sources()
    assert len(unavailable_logs(caplog, source)) == 1


async def test_mounts_filtered(caplog: pytest.LogCaptureFixture) -> None:
    """A bind-mounted file is never a disk, and an unreadable mount is unavailable, not 0 %."""
    assert os.path.isfile("/etc/hostname"), "this test needs /etc/hostname to be a regular file"
    caplog.set_level(logging.DEBUG, logger="collectors.system")
    fake = FakePsutil({"disk_partitions": returns(partitions()), "disk_usage": disk_usage})

    cycles, collector = await run_cycles(fake)

    for samples in cycles:
        assert mounts(samples) == {"/"}
    assert f"disk_usage:{DOCKER_MOUNT}" in collector.unavailable_sources()
    assert "disk_usage:/etc/hostname" not in collector.unavailable_sources()
    assert len(unavailable_logs(caplog, f"disk_usage:{DOCKER_MOUNT}")) == 1


async def test_duplicate_device_reported_once() -> None:
    """A device mounted at two directories gets one `disk_usage` sample, for the first mountpoint."""
    twice = [Partition("/dev/vda1", "/", "ext4", "rw"), Partition("/dev/vda1", "/tmp", "ext4", "rw")]
    fake = FakePsutil({"disk_partitions": returns(twice)})

    cycles, _ = await run_cycles(fake)

    assert mounts(cycles[-1]) == {"/"}


async def test_pseudo_filesystems_skipped() -> None:
    """tmpfs and squashfs mounts get no `disk_usage` sample."""
    listed = [
        Partition("/dev/vda1", "/", "ext4", "rw"),
        Partition("tmpfs", "/tmp", "tmpfs", "rw"),
        Partition("/dev/loop0", "/var", "squashfs", "ro"),
    ]
    fake = FakePsutil({"disk_partitions": returns(listed)})

    cycles, _ = await run_cycles(fake)

    assert mounts(cycles[-1]) == {"/"}


async def test_disk_partitions_denied_keeps_cpu() -> None:
    """When the mount table cannot be read, CPU and memory are still reported and no disk is."""
    fake = FakePsutil({"disk_partitions": raises(PermissionError(errno.EACCES, "Permission denied"))})

    cycles, collector = await run_cycles(fake)

    assert mounts(cycles[-1]) == set()
    assert "cpu_usage" in names(cycles[-1])
    assert collector.unavailable_sources()["disk_partitions"].startswith("PermissionError")


async def test_sensor_without_limits_reports_current() -> None:
    """A sensor with `high=None, critical=None` still reports its current reading."""
    sensors = {"coretemp": [Temperature("Package id 0", 47.0, None, None), Temperature("Core 0", None, None, None)]}
    fake = FakePsutil({"sensors_temperatures": returns(sensors)})

    cycles, collector = await run_cycles(fake)

    readings = {s.label_dict["sensor"]: s.value for s in cycles[-1] if s.name == "temperature_celsius"}
    assert readings == {"coretemp/Package id 0": 47.0}
    assert "sensors_temperatures" not in collector.unavailable_sources()


async def test_sensors_without_current_unavailable() -> None:
    """Sensors that list entries but no current value emit nothing and are unavailable."""
    sensors = {"acpitz": [Temperature("", None, None, None)]}
    fake = FakePsutil({"sensors_temperatures": returns(sensors)})

    cycles, collector = await run_cycles(fake)

    assert "temperature_celsius" not in names(cycles[-1])
    assert "sensors_temperatures" in collector.unavailable_sources()


async def test_changing_errors_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """cpu_freq failing three different ways in a row is logged once, with the latest reason kept."""
    caplog.set_level(logging.INFO, logger="collectors.system")
    sequence = outcomes(
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        OSError(errno.EBUSY, "Device or resource busy"),
        None,
    )

    cycles, collector = await run_cycles(FakePsutil({"cpu_freq": sequence}))

    assert all("cpu_frequency_mhz" not in names(samples) for samples in cycles)
    assert len(unavailable_logs(caplog, "cpu_freq")) == 1
    assert collector.unavailable_sources()["cpu_freq"] == "psutil reported no data"


async def test_source_recovery_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A source that comes back is reported again and its recovery is logged once."""
    caplog.set_level(logging.INFO, logger="collectors.system")
    sequence = outcomes(OSError(errno.EBUSY, "Device or resource busy"), CpuFrequency(2400.0, 0.0, 0.0))

    cycles, collector = await run_cycles(FakePsutil({"cpu_freq": sequence}))

    recovered = [r for r in caplog.records if r.getMessage() == "source recovered collector=system source=cpu_freq"]
    assert "cpu_frequency_mhz" not in names(cycles[0])
    assert [s.value for s in cycles[1] if s.name == "cpu_frequency_mhz"] == [2400.0]
    assert "cpu_freq" not in collector.unavailable_sources()
    assert len(recovered) == 1


async def test_swap_reported_when_configured() -> None:
    """A host with swap gets `swap_usage` with psutil's percentage."""
    fake = FakePsutil({"swap_memory": returns(Swap(1024, 256, 768, 25.0, 0, 0))})

    cycles, _ = await run_cycles(fake)

    assert [s.value for s in cycles[-1] if s.name == "swap_usage"] == [25.0]


async def test_blocked_call_not_doubled() -> None:
    """While a psutil call from a timed-out cycle still blocks, the next cycle fails instead of adding a thread."""
    release = threading.Event()

    def blocked_pids() -> list[int]:
        release.wait(5.0)
        return psutil.pids()

    collector = SystemCollector(interval=0.05, psutil_module=FakePsutil({"pids": blocked_pids}))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(collector.collect(time.time()), 0.3)

    with pytest.raises(CollectorError, match="still blocked"):
        await collector.collect(time.time())
    release.set()
    await wait_for_idle(collector)
    samples = await collector.collect(time.time())

    assert "process_count" in names(samples)


async def wait_for_idle(collector: SystemCollector) -> None:
    """Poll until the collector accepts a new cycle, at most 5 s."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            await collector.collect(time.time())
            return
        except CollectorError:
            assert time.monotonic() < deadline, "the blocked call never finished"
            await asyncio.sleep(0.01)
