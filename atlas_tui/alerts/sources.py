"""Metric sources: the collector behind each metric, and the metrics whose source fails now.

The alert service builds a `SourceHealth` from the collectors' latest statuses each
cycle and hands it to the metric query. A rule that reads a metric of a failing
collector then evaluates to `error` (and `error_state` applies), instead of turning
`nodata` without a reason once the last sample ages out.

A metric fails when its collector's latest cycle failed as a whole
(`CollectorStatus.last_error`), or when the single psutil source behind it was
unavailable in that cycle. A source that serves one series among several (one
mount of `disk_usage`) does not fail the whole metric, so that series just stops.

NOTE: only the system and self-health collectors map to metrics here. A node or
probe collector (`node:<name>`, `probe:<name>`) serves one label set of metrics
that other collectors of its kind also write, so its failure cannot turn a whole
rule to `error`. Its series go stale and the rule reads them as no data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from atlas_tui.backup.metrics import METRICS as BACKUP_METRICS
from collectors import app_health, self_health, system
from collectors.blockchain import NODE_METRICS
from collectors.http_probe import PROBE_METRICS
from collectors.base import CollectorStatus

__all__ = ["KNOWN_METRICS", "SELF_HEALTH_METRICS", "SYSTEM_METRICS", "SYSTEM_SOURCE_METRICS", "SourceHealth", "collector_of"]

SYSTEM_METRICS = system.METRICS
"""Metrics written by the psutil `system` collector."""

SELF_HEALTH_METRICS = self_health.METRICS
"""Metrics written by the `self_health` collector."""

KNOWN_METRICS: frozenset[str] = (
    SYSTEM_METRICS | SELF_HEALTH_METRICS | NODE_METRICS | PROBE_METRICS | app_health.METRICS | BACKUP_METRICS
)
"""Every metric name a built-in collector can write.

A rule over one of these that has no data yet (a lag metric without a reference node,
certificate days without an HTTPS probe) has no data; any other name is unknown.
"""

SYSTEM_SOURCE_METRICS: Mapping[str, tuple[str, ...]] = {
    "cpu_times": ("cpu_usage",),
    "virtual_memory": ("memory_usage",),
    "swap_memory": ("swap_usage",),
    "disk_io_counters": ("disk_read_bytes_per_second", "disk_write_bytes_per_second"),
    "net_io_counters": ("net_recv_bytes_per_second", "net_sent_bytes_per_second"),
    "getloadavg": ("load_1m", "load_5m", "load_15m"),
    "pids": ("process_count",),
    "boot_time": ("uptime_seconds",),
    "cpu_freq": ("cpu_frequency_mhz",),
}
"""The system collector's psutil sources that each feed whole metrics, by source name."""


def collector_of(metric: str) -> str | None:
    """Return the name of the collector that alone writes `metric`, or None when there is none."""
    if metric in SYSTEM_METRICS:
        return "system"
    if metric in SELF_HEALTH_METRICS:
        return "self_health"
    return None


class SourceHealth:
    """The failing sources at the latest collector cycles; call it with a metric name."""

    def __init__(self, statuses: Iterable[CollectorStatus]) -> None:
        """Index the failures found in `statuses`."""
        self._collector_errors: dict[str, str] = {}
        self._metric_errors: dict[str, str] = {}
        for status in statuses:
            if status.last_error:
                self._collector_errors[status.name] = status.last_error
            for source, reason in status.unavailable.items():
                for metric in SYSTEM_SOURCE_METRICS.get(source, ()) if status.name == "system" else ():
                    self._metric_errors[metric] = f"source {source} unavailable: {reason}"

    def __call__(self, metric: str) -> str | None:
        """Return why the source of `metric` is failing now, or None when it is not."""
        collector = collector_of(metric)
        error = self._collector_errors.get(collector) if collector is not None else None
        if error is not None:
            return f"collector {collector} failed: {error}"
        return self._metric_errors.get(metric)

    def __bool__(self) -> bool:
        return bool(self._collector_errors or self._metric_errors)
