"""Host metrics read with psutil: CPU, memory, swap, disks, network, load and processes.

The scheduler calls `SystemCollector.collect(now)` every `interval` seconds and hands
the samples to the store. All psutil calls of one cycle run in one worker thread
(`asyncio.to_thread`), and each source is read in its own guarded step.

Invariants:

- A source that raises, is missing from the installed psutil, or reports nothing is
  left out of the cycle and named in `unavailable_sources()` with the reason. No sample
  is invented for it: no 0 MHz, no 0 °C, no 0 % swap of a host without swap.
- A source is logged when it becomes unavailable and when it recovers, not every cycle.
- Rates (`*_bytes_per_second`) divide counter deltas by the time between two readings
  on a monotonic clock. The first reading of a device emits no rate. A counter that
  went down (driver reload, interface re-created) emits no rate that cycle and becomes
  the new base. A device missing from a reading is forgotten.
- CPU percentages come from `cpu_times` deltas kept in this instance, so other users
  of `psutil.cpu_percent` do not disturb them. A delta spans at least
  `MIN_CPU_WINDOW` seconds, so the first cycle also reports a measured value: it
  reads twice, 0.1 s apart, in its worker thread.
- The mount table, CPU frequency and temperatures are re-read every
  `SLOW_SOURCE_PERIOD` seconds, not every cycle; disk usage of the known mounts is
  read every cycle.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import psutil

from collectors.base import CollectorError, Sample

__all__ = ["METRICS", "MIN_CPU_WINDOW", "PSEUDO_FILESYSTEMS", "SLOW_SOURCE_PERIOD", "SystemCollector"]

logger = logging.getLogger(__name__)

METRICS = frozenset(
    {
        "cpu_usage",
        "cpu_core_usage",
        "memory_usage",
        "swap_usage",
        "disk_usage",
        "disk_read_bytes_per_second",
        "disk_write_bytes_per_second",
        "net_recv_bytes_per_second",
        "net_sent_bytes_per_second",
        "load_1m",
        "load_5m",
        "load_15m",
        "process_count",
        "uptime_seconds",
        "cpu_frequency_mhz",
        "temperature_celsius",
    }
)
"""Every metric name this collector can write."""

MIN_CPU_WINDOW = 0.1
"""Minimum seconds between the two `cpu_times` readings a CPU percentage is computed from.

Linux counts CPU time in 10 ms ticks, so a shorter window gives coarse percentages.
"""

SLOW_SOURCE_PERIOD = 30.0
"""Seconds between reads of the mount table, `cpu_freq` and `sensors_temperatures`.

Together they cost more than the rest of a cycle; a new mount shows up within this time.
"""

PSEUDO_FILESYSTEMS = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs",
        "devpts", "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs",
        "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs", "squashfs", "sysfs",
        "tmpfs", "tracefs",
    }
)
"""File system types that hold no operator data. A squashfs image is read-only and always 100 % full."""

VIRTUAL_DISK_PREFIXES = ("loop", "ram", "zram")
"""Block devices backed by files or memory rather than hardware, so their I/O is not reported."""


class SystemCollector:
    """Read host metrics with psutil once per cycle.

    Metrics: `cpu_usage` (the total) and `cpu_core_usage` (per core, label `cpu`), `memory_usage`,
    `swap_usage`, `disk_usage{mount}`, `disk_read_bytes_per_second{device}`,
    `disk_write_bytes_per_second{device}`, `net_recv_bytes_per_second{interface}`,
    `net_sent_bytes_per_second{interface}`, `load_1m`, `load_5m`, `load_15m`,
    `process_count`, `uptime_seconds`, and where the host reports them
    `cpu_frequency_mhz` and `temperature_celsius{sensor}`.

    Source names in `unavailable_sources()` are the psutil function names
    (`cpu_freq`, `sensors_temperatures`), with the mount for one file system
    (`disk_usage:/var/lib/docker`).
    """

    name = "system"

    def __init__(
        self,
        interval: float = 5.0,
        psutil_module: ModuleType | Any = psutil,
        monotonic: Callable[[], float] = time.monotonic,
        slow_source_period: float = SLOW_SOURCE_PERIOD,
    ) -> None:
        """Create the collector.

        Args:
            interval: Seconds between two cycles.
            psutil_module: The psutil module, or an object with the same functions.
            monotonic: Clock for rate computations, in seconds.
            slow_source_period: Seconds between reads of the mount table, CPU
                frequency and temperatures; 0 reads them every cycle.
        """
        self.interval = interval
        self._slow_source_period = slow_source_period
        self._psutil = psutil_module
        self._monotonic = monotonic
        self._cpu_previous: _CpuTimes | None = None
        self._rates = {
            "disk_read": _CounterRates(),
            "disk_write": _CounterRates(),
            "net_recv": _CounterRates(),
            "net_sent": _CounterRates(),
        }
        self._sources = _SourceLog(self.name)
        self._unavailable: dict[str, str] = {}
        self._reading: asyncio.Future[list[Sample]] | None = None
        self._mountpoints: list[str] | None = None
        self._mountpoints_at = 0.0
        self._slow_read_at: dict[str, float] = {}

    async def collect(self, now: float) -> list[Sample]:
        """Read every source once and return the samples stamped with `now`.

        Raises:
            CollectorError: the previous cycle's worker thread is still blocked in
                a psutil call, so no second thread is started beside it.
        """
        if self._reading is not None and not self._reading.done():
            raise CollectorError(
                "a psutil call of the previous cycle is still blocked, so this cycle was skipped. "
                "Check for a hung file system or device"
            )
        self._reading = asyncio.ensure_future(asyncio.to_thread(self._read_all, now))
        self._reading.add_done_callback(_retrieve_result)
        # The shield keeps the future pending until the thread really ends, even when
        # the scheduler's timeout cancels this coroutine. The guard above relies on that.
        return await asyncio.shield(self._reading)

    def unavailable_sources(self) -> Mapping[str, str]:
        """Return the sources skipped in the latest cycle, mapped to the reason."""
        return dict(self._unavailable)

    def _read_all(self, now: float) -> list[Sample]:
        cycle = _Cycle(now)
        for step in (
            self._read_cpu,
            self._read_memory,
            self._read_swap,
            self._read_disk_usage,
            self._read_disk_io,
            self._read_network,
            self._read_load,
            self._read_processes,
            self._read_uptime,
        ):
            step(cycle)
        self._read_slowly(cycle, "cpu_freq", self._read_cpu_frequency)
        self._read_slowly(cycle, "sensors_temperatures", self._read_temperatures)
        self._unavailable = self._sources.update(cycle)
        return cycle.samples

    def _call(self, cycle: _Cycle, source: str, function_name: str, *args: Any, **kwargs: Any) -> Any:
        """Call one psutil function, or record why its source is unavailable and return None."""
        function = getattr(self._psutil, function_name, None)
        if function is None:
            cycle.unavailable(source, "not provided by psutil on this platform", logging.INFO)
            return None
        # A source boundary: depending on platform and psutil version a failed read is
        # an OSError (ENOENT, EBUSY, ENODEV, EACCES), a psutil.Error, a RuntimeError or
        # an AttributeError, and one bad source must not cost the other sources.
        try:
            result = function(*args, **kwargs)
        except Exception as err:
            cycle.unavailable(source, f"{type(err).__name__}: {err}", logging.WARNING)
            return None
        if result is None or (isinstance(result, (dict, list, tuple)) and not result):
            cycle.unavailable(source, "psutil reported no data", logging.INFO)
            return None
        cycle.available.add(source)
        return result

    def _read_cpu(self, cycle: _Cycle) -> None:
        previous = self._cpu_previous
        if previous is None:
            previous = self._read_cpu_times(cycle)
            if previous is None:
                return
        # Percentages over a few clock ticks are mostly rounding, so wait out the rest
        # of the minimum window when the previous reading is recent (first cycle, or
        # cycles called back to back).
        remaining = previous.at + MIN_CPU_WINDOW - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        current = self._read_cpu_times(cycle)
        if current is None:
            return
        self._cpu_previous = current

        total = _busy_percent(previous.total, current.total)
        if total is not None:
            cycle.add("cpu_usage", total)
        for index, (before, after) in enumerate(zip(previous.cores, current.cores)):
            percent = _busy_percent(before, after)
            if percent is not None:
                cycle.add("cpu_core_usage", percent, cpu=str(index))

    def _read_cpu_times(self, cycle: _Cycle) -> _CpuTimes | None:
        total = self._call(cycle, "cpu_times", "cpu_times", percpu=False)
        cores = self._call(cycle, "cpu_times", "cpu_times", percpu=True)
        if total is None or cores is None:
            return None
        return _CpuTimes(total=total, cores=list(cores), at=time.monotonic())

    def _read_memory(self, cycle: _Cycle) -> None:
        memory = self._call(cycle, "virtual_memory", "virtual_memory")
        if memory is None:
            return
        percent = _finite(getattr(memory, "percent", None))
        if percent is None or not _finite(getattr(memory, "total", None)):
            cycle.unavailable("virtual_memory", "psutil reported no memory total", logging.WARNING)
            return
        cycle.add("memory_usage", percent)

    def _read_swap(self, cycle: _Cycle) -> None:
        swap = self._call(cycle, "swap_memory", "swap_memory")
        if swap is None:
            return
        total = _finite(getattr(swap, "total", None))
        percent = _finite(getattr(swap, "percent", None))
        if total is None or percent is None:
            cycle.unavailable("swap_memory", "psutil reported no swap total", logging.WARNING)
            return
        # 0 % of no swap would read as "healthy swap", so a host without swap gets no sample.
        if total == 0:
            cycle.unavailable("swap_memory", "no swap configured", logging.INFO)
            return
        cycle.add("swap_usage", percent)

    def _read_slowly(self, cycle: _Cycle, source: str, step: Callable[[_Cycle], None]) -> None:
        """Run `step` at most once per `SLOW_SOURCE_PERIOD`, carrying its failure in between.

        Frequency and temperature change slowly but cost a walk of /sys on every read,
        the largest part of a cycle on a small VM. Between reads the source keeps its
        last outcome, so it neither flaps between unavailable and recovered nor logs again.
        """
        at = self._monotonic()
        last = self._slow_read_at.get(source)
        if last is not None and at - last < self._slow_source_period:
            if source in self._unavailable:
                cycle.failures[source] = (self._unavailable[source], logging.DEBUG)
            return
        self._slow_read_at[source] = at
        step(cycle)

    def _real_mountpoints(self, cycle: _Cycle) -> list[str] | None:
        """Return the mountpoints to measure, re-reading the mount table every `SLOW_SOURCE_PERIOD`."""
        at = self._monotonic()
        if self._mountpoints is not None and at - self._mountpoints_at < self._slow_source_period:
            cycle.available.add("disk_partitions")
            return self._mountpoints
        partitions = self._call(cycle, "disk_partitions", "disk_partitions", all=False)
        self._mountpoints = None if partitions is None else _real_mountpoints(partitions)
        self._mountpoints_at = at
        return self._mountpoints

    def _read_disk_usage(self, cycle: _Cycle) -> None:
        mountpoints = self._real_mountpoints(cycle)
        if mountpoints is None:
            return
        for mountpoint in mountpoints:
            source = f"disk_usage:{mountpoint}"
            usage = self._call(cycle, source, "disk_usage", mountpoint)
            if usage is None:
                continue
            percent = _finite(getattr(usage, "percent", None))
            if percent is None or not _finite(getattr(usage, "total", None)):
                cycle.unavailable(source, "file system reports a size of 0", logging.INFO)
                continue
            cycle.add("disk_usage", percent, mount=mountpoint)

    def _read_disk_io(self, cycle: _Cycle) -> None:
        counters = self._call(cycle, "disk_io_counters", "disk_io_counters", perdisk=True)
        if counters is None:
            return
        at = self._monotonic()
        disks = {
            device: values
            for device, values in counters.items()
            if not device.startswith(VIRTUAL_DISK_PREFIXES)
        }
        self._emit_rates(cycle, "disk_read", _field(disks, "read_bytes"), at, "device")
        self._emit_rates(cycle, "disk_write", _field(disks, "write_bytes"), at, "device")

    def _read_network(self, cycle: _Cycle) -> None:
        counters = self._call(cycle, "net_io_counters", "net_io_counters", pernic=True)
        if counters is None:
            return
        at = self._monotonic()
        self._emit_rates(cycle, "net_recv", _field(counters, "bytes_recv"), at, "interface")
        self._emit_rates(cycle, "net_sent", _field(counters, "bytes_sent"), at, "interface")

    def _emit_rates(
        self, cycle: _Cycle, prefix: str, counters: Mapping[str, int], at: float, label: str
    ) -> None:
        for key, rate in self._rates[prefix].update(counters, at).items():
            cycle.add(f"{prefix}_bytes_per_second", rate, **{label: key})

    def _read_load(self, cycle: _Cycle) -> None:
        # NOTE: on Windows psutil emulates the load average and returns 0.0 for about the
        # first 5 seconds (psutil documentation of getloadavg), so the first samples read 0.
        load = self._call(cycle, "getloadavg", "getloadavg")
        if load is None:
            return
        for name, value in zip(("load_1m", "load_5m", "load_15m"), load):
            number = _finite(value)
            if number is not None:
                cycle.add(name, number)

    def _read_processes(self, cycle: _Cycle) -> None:
        pids = self._call(cycle, "pids", "pids")
        if pids is not None:
            cycle.add("process_count", len(pids))

    def _read_uptime(self, cycle: _Cycle) -> None:
        boot_time = _finite(self._call(cycle, "boot_time", "boot_time"))
        if boot_time is None:
            return
        uptime = cycle.now - boot_time
        if uptime <= 0:
            cycle.unavailable("boot_time", "boot time is later than the current time", logging.WARNING)
            return
        cycle.add("uptime_seconds", uptime)

    def _read_cpu_frequency(self, cycle: _Cycle) -> None:
        frequency = self._call(cycle, "cpu_freq", "cpu_freq")
        if frequency is None:
            return
        current = _finite(getattr(frequency, "current", None))
        # Some virtual machines report 0 MHz, which no running CPU has.
        if current is None or current <= 0:
            cycle.unavailable("cpu_freq", "psutil reported no current frequency", logging.INFO)
            return
        cycle.add("cpu_frequency_mhz", current)

    def _read_temperatures(self, cycle: _Cycle) -> None:
        sensors = self._call(cycle, "sensors_temperatures", "sensors_temperatures")
        if sensors is None:
            return
        readings = _temperature_readings(sensors)
        if not readings:
            cycle.unavailable("sensors_temperatures", "no sensor reported a current value", logging.INFO)
            return
        for sensor, celsius in readings.items():
            cycle.add("temperature_celsius", celsius, sensor=sensor)


@dataclass(slots=True)
class _Cycle:
    """Samples and source outcomes gathered during one cycle."""

    now: float
    samples: list[Sample] = field(default_factory=list)
    available: set[str] = field(default_factory=set)
    failures: dict[str, tuple[str, int]] = field(default_factory=dict)

    def add(self, name: str, value: float, **labels: str) -> None:
        self.samples.append(Sample.of(name, value, self.now, **labels))

    def unavailable(self, source: str, reason: str, level: int) -> None:
        self.failures[source] = (reason, level)


class _SourceLog:
    """Log of source transitions: a source is logged when it becomes unavailable and when it recovers."""

    def __init__(self, collector: str) -> None:
        self._collector = collector
        self._down: dict[str, str] = {}

    def update(self, cycle: _Cycle) -> dict[str, str]:
        """Log the transitions of this cycle and return its unavailable sources."""
        for source, (reason, level) in cycle.failures.items():
            if source not in self._down:
                logger.log(
                    level, "source unavailable collector=%s source=%s reason=%s",
                    self._collector, source, reason,
                )
            elif self._down[source] != reason:
                logger.debug(
                    "source still unavailable collector=%s source=%s reason=%s",
                    self._collector, source, reason,
                )
            self._down[source] = reason

        for source in cycle.available - cycle.failures.keys():
            if self._down.pop(source, None) is not None:
                logger.info("source recovered collector=%s source=%s", self._collector, source)

        return {source: reason for source, (reason, _) in cycle.failures.items()}


@dataclass(frozen=True, slots=True)
class _CpuTimes:
    total: Any
    cores: list[Any]
    at: float
    """`time.monotonic()` of the reading, never the injected clock, because the CPU window is real time."""


class _CounterRates:
    """Per-key rates of increasing counters between two consecutive readings."""

    def __init__(self) -> None:
        self._previous: dict[str, int] = {}
        self._previous_at: float | None = None

    def update(self, counters: Mapping[str, int], at: float) -> dict[str, float]:
        """Store this reading and return the rate per key since the previous one.

        Keys without a previous reading and counters that went down get no rate; keys
        missing from `counters` are forgotten.
        """
        rates: dict[str, float] = {}
        elapsed = None if self._previous_at is None else at - self._previous_at
        if elapsed is not None and elapsed > 0:
            for key, value in counters.items():
                before = self._previous.get(key)
                if before is not None and value >= before:
                    rates[key] = (value - before) / elapsed
        self._previous = dict(counters)
        self._previous_at = at
        return rates


def _real_mountpoints(partitions: Iterable[Any]) -> list[str]:
    """Return the mountpoints worth a `disk_usage` sample, one per device."""
    seen_devices: set[str] = set()
    mountpoints: list[str] = []
    for partition in partitions:
        device = getattr(partition, "device", None)
        mountpoint = getattr(partition, "mountpoint", None)
        if not mountpoint or getattr(partition, "fstype", "") in PSEUDO_FILESYSTEMS:
            continue
        if _is_mounted_file(mountpoint):
            continue
        # A device mounted twice (bind mounts, btrfs subvolumes) has one usage, so it is
        # reported at its first mountpoint in the mount table, normally the original mount.
        if device and device in seen_devices:
            continue
        if device:
            seen_devices.add(device)
        mountpoints.append(mountpoint)
    return mountpoints


def _is_mounted_file(mountpoint: str) -> bool:
    """Return True when a mountpoint is a bind-mounted file, such as `/etc/hostname` in a container."""
    try:
        mode = os.stat(mountpoint).st_mode
    except OSError:
        # When the mountpoint cannot be read, `disk_usage` runs anyway and reports why.
        return False
    return not stat.S_ISDIR(mode)


def _busy_percent(before: Any, after: Any) -> float | None:
    """Return the busy share between two `cpu_times` readings, or None if no time passed."""
    all_before, idle_before = _cpu_totals(before)
    all_after, idle_after = _cpu_totals(after)
    elapsed = all_after - all_before
    if elapsed <= 0:
        return None
    busy = (all_after - idle_after) - (all_before - idle_before)
    # The kernel's proc documentation warns that iowait in /proc/stat can decrease, so
    # the result is clamped to 0..100 %.
    return min(max(busy / elapsed * 100.0, 0.0), 100.0)


def _cpu_totals(times: Any) -> tuple[float, float]:
    """Return (all, idle) seconds of one `cpu_times` reading."""
    values = times._asdict()
    total = sum(value for value in values.values() if _finite(value) is not None)
    # Linux already counts guest time inside user and nice time.
    total -= values.get("guest", 0.0) + values.get("guest_nice", 0.0)
    idle = values.get("idle", 0.0) + values.get("iowait", 0.0)
    return total, idle


def _temperature_readings(sensors: Mapping[str, Iterable[Any]]) -> dict[str, float]:
    """Return the current temperature per sensor, skipping entries without a value."""
    readings: dict[str, float] = {}
    for chip, entries in sensors.items():
        for index, entry in enumerate(entries or ()):
            celsius = _finite(getattr(entry, "current", None))
            if celsius is None:
                continue
            sensor = f"{chip}/{getattr(entry, 'label', '') or index}"
            if sensor in readings:
                sensor = f"{sensor}/{index}"
            readings[sensor] = celsius
    return readings


def _field(counters: Mapping[str, Any], name: str) -> dict[str, int]:
    """Return one counter field per key, skipping keys where it is missing."""
    values: dict[str, int] = {}
    for key, entry in counters.items():
        value = _finite(getattr(entry, name, None))
        if value is not None:
            values[key] = int(value)
    return values


def _finite(value: Any) -> float | None:
    """Return `value` as a float, or None when it is missing, not a number or not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _retrieve_result(future: asyncio.Future[list[Sample]]) -> None:
    """Mark an abandoned reading's exception as retrieved so asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()
