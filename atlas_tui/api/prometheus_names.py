"""Prometheus names, help texts and unit conversions for ATLAS metric names.

`atlas_tui.api.prometheus` calls `exposed_metric` for each stored series.
ATLAS names follow the conditions operators write (`cpu_usage > 80`, percent unless
the name names another unit). Prometheus' naming guide recommends base units and a
unit suffix. The rules:

| ATLAS | exposed | value |
|---|---|---|
| percent (`cpu_usage`, `disk_usage`, `*_percent`) | `atlas_<name>_ratio` | ÷ 100, so 0 to 1 |
| `*_ms` | `atlas_*_seconds` | ÷ 1000 |
| `*_minutes`, `*_hours`, `*_days` | `atlas_*_seconds` | × 60, 3600, 86400 |
| `tls_cert_days_left` | `atlas_tls_cert_remaining_seconds` | × 86400 |
| `*_mhz` | `atlas_*_hertz` | × 1e6 |
| `*_per_minute` | `atlas_*_per_second` | ÷ 60 |
| `process_count`, `node_peer_count` | `atlas_processes`, `atlas_node_peers` | unchanged |
| other `*_count`, `*_sum`, `*_bucket`, `*_total` | `atlas_<name>_value` | unchanged |
| anything else | `atlas_<name>` | unchanged |

Percentages become ratios because the Prometheus naming guide lists the ratio
(0 to 1) as the base unit of a percentage. So the ATLAS rule `cpu_usage > 80` reads
`atlas_cpu_usage_ratio > 0.8` in PromQL. Bytes, seconds and Celsius names are kept.
Every stored series is exposed as a gauge: collectors store readings and rates,
never running counters. Prometheus reserves the `_total` suffix for counters, and
`_count`, `_sum`, `_bucket` and the labels `le` and `quantile` for histograms and
summaries, so gauges avoid them (`promtool check metrics` reports them otherwise).

Invariants: `exposed_metric` is pure and total. An unknown name still gets a valid
Prometheus name (characters outside `[a-zA-Z0-9_:]` become `_`) and a generic help
text, so a new collector shows up without a change here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PREFIX", "ExposedMetric", "exposed_metric", "label_name"]

PREFIX = "atlas_"
"""Prefix of every exposed name that comes from the store."""

_INVALID_METRIC_CHARACTERS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARACTERS = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True, slots=True)
class ExposedMetric:
    """The exposed form of one ATLAS metric: its Prometheus name, help text and scale."""

    name: str
    """Full Prometheus name, `atlas_` prefix included."""
    help: str
    """One-line description for the `# HELP` line."""
    multiplier: float = 1.0
    """Factor applied to the stored value."""
    divisor: float = 1.0
    """Divisor applied after `multiplier`. Dividing by the exact 100 rounds once, where
    multiplying by the inexact 0.01 rounds twice."""

    def convert(self, value: float) -> float:
        """Return the stored `value` in the exposed unit."""
        return value * self.multiplier / self.divisor


@dataclass(frozen=True, slots=True)
class _Conversion:
    suffix: str
    multiplier: float = 1.0
    divisor: float = 1.0


_RATIO = _Conversion("_ratio", divisor=100.0)
_MILLISECONDS = _Conversion("_seconds", divisor=1000.0)
_DAYS = _Conversion("_seconds", multiplier=86400.0)
_MEGAHERTZ = _Conversion("_hertz", multiplier=1e6)
_PER_MINUTE = _Conversion("_per_second", divisor=60.0)

_RESERVED_SUFFIXES = ("_count", "_sum", "_bucket", "_total")
_RESERVED_LABELS = frozenset({"le", "quantile"})

# Suffixes of names not in `_KNOWN`, checked in this order.
_SUFFIX_RULES: tuple[tuple[str, _Conversion], ...] = (
    ("_percent", _RATIO),
    ("_ms", _MILLISECONDS),
    ("_minutes", _Conversion("_seconds", multiplier=60.0)),
    ("_hours", _Conversion("_seconds", multiplier=3600.0)),
    ("_days", _DAYS),
    ("_mhz", _MEGAHERTZ),
    ("_per_minute", _PER_MINUTE),
)

# ATLAS name -> (exposed name without prefix, help text, conversion or None).
_KNOWN: dict[str, tuple[str, str, _Conversion | None]] = {
    "cpu_usage": ("cpu_usage_ratio", "Share of CPU time in use across all cores, 0 to 1.", _RATIO),
    "cpu_core_usage": ("cpu_core_usage_ratio", "Share of one core's time in use, 0 to 1.", _RATIO),
    "memory_usage": ("memory_usage_ratio", "Share of physical memory in use, 0 to 1.", _RATIO),
    "swap_usage": ("swap_usage_ratio", "Share of swap space in use, 0 to 1.", _RATIO),
    "disk_usage": ("disk_usage_ratio", "Share of the file system's space in use, 0 to 1.", _RATIO),
    "disk_read_bytes_per_second": (
        "disk_read_bytes_per_second", "Bytes read from the device per second over one collection interval.", None),
    "disk_write_bytes_per_second": (
        "disk_write_bytes_per_second", "Bytes written to the device per second over one collection interval.", None),
    "net_recv_bytes_per_second": (
        "net_recv_bytes_per_second", "Bytes received on the interface per second over one collection interval.", None),
    "net_sent_bytes_per_second": (
        "net_sent_bytes_per_second", "Bytes sent on the interface per second over one collection interval.", None),
    "load_1m": ("load_1m", "System load average over 1 minute.", None),
    "load_5m": ("load_5m", "System load average over 5 minutes.", None),
    "load_15m": ("load_15m", "System load average over 15 minutes.", None),
    "process_count": ("processes", "Processes running on the host.", None),
    "uptime_seconds": ("uptime_seconds", "Seconds since the host booted.", None),
    "cpu_frequency_mhz": ("cpu_frequency_hertz", "Current CPU clock frequency in hertz.", _MEGAHERTZ),
    "temperature_celsius": ("temperature_celsius", "Temperature of the sensor in degrees Celsius.", None),
    "collector_up": ("collector_up", "1 when the collector's latest cycle succeeded, else 0.", None),
    "collector_duration_ms": (
        "collector_duration_seconds", "Wall time of the collector's latest cycle.", _MILLISECONDS),
    "collector_source_available": (
        "collector_source_available", "1 when the collector read the source in its latest cycle, 0 when it could not.",
        None),
    "store_db_bytes": ("store_db_bytes", "Size of the SQLite store file.", None),
    "store_wal_bytes": ("store_wal_bytes", "Size of the store's write-ahead log file.", None),
    "daemon_rss_bytes": ("daemon_rss_bytes", "Resident memory of the daemon at its latest self-health reading.", None),
    "daemon_cpu_percent": (
        "daemon_cpu_usage_ratio", "CPU time the daemon used per second of wall time; 1 is one full core.", _RATIO),
    "node_up": ("node_up", "1 when the node answered JSON-RPC in the latest poll, else 0.", None),
    "node_health": (
        "node_health",
        "Node health code: 0 ok, 1 syncing, 2 lagging, 3 stalled, 4 starting, 5 down, 6 misconfigured.",
        None),
    "node_block_height": ("node_block_height", "Height of the node's head block.", None),
    "node_head_age_seconds": ("node_head_age_seconds", "Seconds since the timestamp of the node's head block.", None),
    "node_block_lag": ("node_block_lag", "Blocks the node is behind its highest reference.", None),
    "node_peer_count": ("node_peers", "Peers connected to the node.", None),
    "node_syncing": ("node_syncing", "1 while the node reports that it is syncing, else 0.", None),
    "node_rpc_latency_ms": (
        "node_rpc_latency_seconds", "Round-trip time of the poll's first JSON-RPC request.", _MILLISECONDS),
    "node_gas_price_wei": ("node_gas_price_wei", "Gas price the node suggests, in wei.", None),
    "node_pending_transactions": ("node_pending_transactions", "Transactions waiting in the node's pool.", None),
    "probe_up": ("probe_up", "1 when the probe's response had the expected status and body, else 0.", None),
    "probe_latency_ms": (
        "probe_latency_seconds", "Time from sending the probe's request until its body was read.", _MILLISECONDS),
    "probe_status_code": ("probe_status_code", "HTTP status code of the probe's latest response.", None),
    "tls_cert_days_left": (
        "tls_cert_remaining_seconds", "Seconds until the server certificate expires; negative once it has.", _DAYS),
    "app_crash_free_sessions": (
        "app_crash_free_sessions_ratio", "Share of the last day's sessions without a crash, 0 to 1.", _RATIO),
    "app_start_time_p95_ms": (
        "app_start_time_p95_seconds", "95th percentile of the app start time over the last day.", _MILLISECONDS),
    "analytics_events_per_minute": (
        "analytics_events_per_second", "Analytics events received per second over the last 5 minutes.", _PER_MINUTE),
}


def exposed_metric(name: str) -> ExposedMetric:
    """Return the Prometheus name, help text and scale for the ATLAS metric `name`."""
    known = _KNOWN.get(name)
    if known is not None:
        exposed, help_text, conversion = known
        return _build(exposed, help_text, conversion)

    for suffix, conversion in _SUFFIX_RULES:
        if name.endswith(suffix) and len(name) > len(suffix):
            base = name[: -len(suffix)]
            return _build(base + conversion.suffix, f"ATLAS metric {name}, converted to base units.", conversion)
    exposed = _INVALID_METRIC_CHARACTERS.sub("_", name)
    if exposed.endswith(_RESERVED_SUFFIXES):
        exposed += "_value"
    return _build(exposed, f"ATLAS metric {name}, in the unit it was stored in.", None)


def label_name(name: str) -> str:
    """Return `name` as a valid Prometheus label name.

    Invalid characters become `_`, and a leading digit gets a `_` in front. A name
    starting with `__` (reserved for Prometheus itself) gets the prefix `label`, and
    `le` and `quantile`, which only histograms and summaries may carry, get `label_`.
    """
    valid = _INVALID_LABEL_CHARACTERS.sub("_", name) or "_"
    if valid[0].isdigit():
        valid = "_" + valid
    if valid.startswith("__"):
        return "label" + valid
    if valid in _RESERVED_LABELS:
        return "label_" + valid
    return valid


def _build(exposed: str, help_text: str, conversion: _Conversion | None) -> ExposedMetric:
    name = PREFIX + _INVALID_METRIC_CHARACTERS.sub("_", exposed)
    if conversion is None:
        return ExposedMetric(name, help_text)
    return ExposedMetric(name, help_text, conversion.multiplier, conversion.divisor)
