"""View models of the Nodes and Probes tables, built from the newest stored samples.

`LocalSource.snapshot` calls `node_rows` and `probe_rows` with the newest sample of
every series (`storage.metrics.latest`) and the collector statuses, and puts the
rows into `ConsoleSnapshot.nodes` and `.probes`. The Metrics pane's nodes section
(`console.nodes_panel`) shows them. Nothing here imports Textual.

Invariants:

- A row shows only values from its collector's latest cycle: every sample of a cycle
  has the same timestamp, so a value older than the row's `node_health` (or
  `probe_up`) sample is left out instead of being shown as current. A node that went
  down therefore shows no height, not the height it had before.
- Numbers stay raw (blocks, seconds, milliseconds, days); `console.node_presentation`
  formats them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from collectors.base import CollectorStatus
from collectors.health import NodeHealth, health_from_code
from storage.metrics import SeriesValue

__all__ = ["NodeRow", "ProbeRow", "node_rows", "probe_rows"]


@dataclass(frozen=True, slots=True)
class NodeRow:
    """The latest poll of one blockchain node."""

    name: str
    """The node's name (its `node` label)."""
    kind: str | None
    """`ethereum` or `bitcoin` from the console's config; None for a node the config does not list."""
    health: NodeHealth | None
    """Health state; None when the stored code is no known state."""
    ts: float
    """UTC epoch seconds of the poll."""
    height: float | None = None
    """Block height."""
    lag: float | None = None
    """Blocks behind the highest reference."""
    head_age: float | None = None
    """Seconds since the head block's timestamp."""
    peers: float | None = None
    """Connected peers."""
    latency_ms: float | None = None
    """JSON-RPC round trip in milliseconds."""
    detail: str = ""
    """Reason the node is down, misconfigured or starting, from its collector status; empty otherwise."""


@dataclass(frozen=True, slots=True)
class ProbeRow:
    """The latest request of one HTTP probe."""

    target: str
    """The probe's name (its `target` label)."""
    up: bool
    """Whether the endpoint responded as expected."""
    ts: float
    """UTC epoch seconds of the request."""
    status_code: float | None = None
    """HTTP status; None when no response arrived."""
    latency_ms: float | None = None
    """Time until the body was read."""
    cert_days_left: float | None = None
    """Days until the TLS certificate expires; None for plain HTTP."""
    detail: str = ""
    """Reason the request failed, from the collector status; empty otherwise."""


_NODE_FIELDS = {
    "node_block_height": "height",
    "node_block_lag": "lag",
    "node_head_age_seconds": "head_age",
    "node_peer_count": "peers",
    "node_rpc_latency_ms": "latency_ms",
}
_PROBE_FIELDS = {
    "probe_status_code": "status_code",
    "probe_latency_ms": "latency_ms",
    "tls_cert_days_left": "cert_days_left",
}


def node_rows(
    values: Iterable[SeriesValue], statuses: Iterable[CollectorStatus], kinds: Mapping[str, str]
) -> tuple[NodeRow, ...]:
    """Build one row per node with a `node_health` sample, sorted by name.

    Args:
        values: The newest sample of every series.
        statuses: Collector statuses; `node:<name>` gives the detail text.
        kinds: Node name mapped to its kind, from the config.
    """
    by_label = _group(values, "node")
    details = _details(statuses, "node:", "rpc")
    rows = []
    for name, series in sorted(by_label.items()):
        health = series.get("node_health")
        if health is None:
            continue
        fields = {field: series[metric].value for metric, field in _NODE_FIELDS.items()
                  if metric in series and series[metric].ts >= health.ts}
        rows.append(
            NodeRow(name, kinds.get(name), health_from_code(health.value), health.ts,
                    detail=details.get(name, ""), **fields)
        )
    return tuple(rows)


def probe_rows(values: Iterable[SeriesValue], statuses: Iterable[CollectorStatus]) -> tuple[ProbeRow, ...]:
    """Build one row per probe with a `probe_up` sample, sorted by target.

    Args:
        values: The newest sample of every series.
        statuses: Collector statuses; `probe:<name>` gives the detail text.
    """
    by_label = _group(values, "target")
    details = _details(statuses, "probe:", "request")
    rows = []
    for target, series in sorted(by_label.items()):
        up = series.get("probe_up")
        if up is None:
            continue
        fields = {field: series[metric].value for metric, field in _PROBE_FIELDS.items()
                  if metric in series and series[metric].ts >= up.ts}
        rows.append(ProbeRow(target, up.value >= 1, up.ts, detail=details.get(target, ""), **fields))
    return tuple(rows)


def _group(values: Iterable[SeriesValue], label: str) -> dict[str, dict[str, SeriesValue]]:
    """Group samples that carry `label` by its value, then by metric name."""
    grouped: dict[str, dict[str, SeriesValue]] = {}
    for value in values:
        labels = dict(value.labels)
        if label in labels:
            grouped.setdefault(labels[label], {})[value.name] = value
    return grouped


def _details(statuses: Iterable[CollectorStatus], prefix: str, source: str) -> dict[str, str]:
    details = {}
    for status in statuses:
        if status.name.startswith(prefix) and source in status.unavailable:
            details[status.name.removeprefix(prefix)] = status.unavailable[source]
    return details
