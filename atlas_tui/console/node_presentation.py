"""Display models of the Nodes and Probes tables: formatted cells and a status per row.

The Metrics pane's nodes section (`console.nodes_panel`) calls these pure functions
on the UI thread with the rows of a `ConsoleSnapshot`, and hands the results to
`widgets.status_table.StatusTable`. The status decides the row's colour:

| status | node health | probe |
|---|---|---|
| `ok` | ok | up, certificate ≥ 14 days |
| `warning` | syncing, lagging, starting | up, certificate < 14 days |
| `critical` | stalled, down, misconfigured | down, or certificate expired |
| `stale` | unknown code, or the latest poll older than `STALE_AFTER` | the same |

Node names, targets and details pass through `printable` and are truncated here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from atlas_tui.console.formatting import format_duration_short, printable, truncate_cells
from atlas_tui.console.node_models import NodeRow, ProbeRow
from collectors.health import NodeHealth

__all__ = [
    "CERT_WARNING_DAYS",
    "NODE_COLUMNS",
    "PROBE_COLUMNS",
    "STALE_AFTER",
    "RowStatus",
    "StatusRowView",
    "node_views",
    "probe_views",
]

RowStatus = Literal["ok", "warning", "critical", "stale"]
"""The semantic status of a row, mapped to a theme colour by the table widget."""

CERT_WARNING_DAYS = 14.0
"""Days left below which a certificate is shown as a warning; equal to the example rule's threshold."""

STALE_AFTER = 180.0
"""Seconds after which a row's latest sample is shown as stale.

Long enough for three polls at a one-minute interval, so a slowly polled node is not
flagged, and short enough to mark a node removed from the config or a stopped writer.
"""

NAME_WIDTH = 20
DETAIL_WIDTH = 48

NODE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Node"),
    ("health", "Health"),
    ("height", "Height"),
    ("lag", "Lag"),
    ("head_age", "Head age"),
    ("peers", "Peers"),
    ("latency", "Latency"),
    ("kind", "Kind"),
    ("detail", "Detail"),
)
"""Column keys and headings of the Nodes table, in order. Health and height come first
because at 80 columns the table is about 40 cells wide and cuts off the rest."""

PROBE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Probe"),
    ("state", "State"),
    ("code", "Code"),
    ("latency", "Latency"),
    ("cert", "Cert"),
    ("detail", "Detail"),
)
"""Column keys and headings of the Probes table, in order."""

_MISSING = "—"
_HEALTH_STATUS: dict[NodeHealth, RowStatus] = {
    "ok": "ok",
    "syncing": "warning",
    "lagging": "warning",
    "starting": "warning",
    "stalled": "critical",
    "down": "critical",
    "misconfigured": "critical",
}


@dataclass(frozen=True, slots=True)
class StatusRowView:
    """One table row: cell texts by column key, a row key and a status."""

    key: str
    """Row key, stable across refreshes (the node name or probe target)."""
    cells: dict[str, str]
    """Cell text by column key."""
    status: RowStatus
    """Colour class of the row."""

    def cell(self, column_key: str) -> str:
        """Return the text of the column with key `column_key`."""
        return self.cells[column_key]


def node_views(rows: Iterable[NodeRow], now: float) -> list[StatusRowView]:
    """Build the Nodes table rows, in the order given."""
    return [_node_view(row, now) for row in rows]


def probe_views(rows: Iterable[ProbeRow], now: float) -> list[StatusRowView]:
    """Build the Probes table rows, in the order given."""
    return [_probe_view(row, now) for row in rows]


def _node_view(row: NodeRow, now: float) -> StatusRowView:
    status = _HEALTH_STATUS.get(row.health, "stale") if row.health is not None else "stale"
    stale = now - row.ts > STALE_AFTER
    health = row.health or "unknown"
    cells = {
        "name": _name(row.name),
        "kind": row.kind or _MISSING,
        "height": _number(row.height),
        "lag": _number(row.lag),
        "head_age": _MISSING if row.head_age is None else format_duration_short(row.head_age),
        "peers": _number(row.peers),
        "latency": _milliseconds(row.latency_ms),
        "health": f"{health} (stale)" if stale else health,
        "detail": truncate_cells(printable(row.detail), DETAIL_WIDTH),
    }
    return StatusRowView(row.name, cells, "stale" if stale else status)


def _probe_view(row: ProbeRow, now: float) -> StatusRowView:
    stale = now - row.ts > STALE_AFTER
    state = "up" if row.up else "down"
    cells = {
        "name": _name(row.target),
        "state": f"{state} (stale)" if stale else state,
        "code": _number(row.status_code),
        "latency": _milliseconds(row.latency_ms),
        "cert": _MISSING if row.cert_days_left is None else f"{row.cert_days_left:.0f}d",
        "detail": truncate_cells(printable(row.detail), DETAIL_WIDTH),
    }
    return StatusRowView(row.target, cells, "stale" if stale else _probe_status(row))


def _probe_status(row: ProbeRow) -> RowStatus:
    days = row.cert_days_left
    if not row.up or (days is not None and days <= 0):
        return "critical"
    if days is not None and days < CERT_WARNING_DAYS:
        return "warning"
    return "ok"


def _name(text: str) -> str:
    return truncate_cells(printable(text), NAME_WIDTH, keep="middle")


def _number(value: float | None) -> str:
    return _MISSING if value is None else f"{value:,.0f}"


def _milliseconds(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.1f} ms"
