"""Display models for the Alerts pane, the header counts and the banner, built from alert view models.

The pane, the header and the banner call these pure functions on the UI thread
with the `AlertsSnapshot` the data worker delivered. The result is text already
truncated to its column, plus a semantic `Status` that the widgets map to a theme
colour (`console.widgets.status_text`). Every text that came from the config or
the host (rule names, labels, channel errors) passes through `printable` here, so
no widget has to guard against long or hostile text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from atlas_tui.console.alert_models import (
    SEVERITIES,
    AlertCounts,
    AlertRow,
    AlertsSnapshot,
    ChannelStatusRow,
    Severity,
)
from atlas_tui.console.formatting import format_age, format_duration_short, printable, truncate_cells

__all__ = [
    "ALERT_FIXED_WIDTHS",
    "CHANNEL_COLUMNS",
    "SEVERITY_FILTERS",
    "AlertRowView",
    "ChannelRowView",
    "Column",
    "SeverityFilter",
    "Status",
    "alert_columns",
    "alert_row_views",
    "banner_text",
    "channel_columns",
    "channel_row_views",
    "count_parts",
    "display_state",
    "engine_lines",
    "format_alert_value",
    "labels_text",
    "next_filter",
    "severity_label",
]

Status = Literal[
    "critical", "error", "warning", "info",
    "firing", "pending", "acknowledged", "silenced", "resolved", "nodata", "inactive",
    "ok", "degraded", "failing", "misconfigured", "muted",
]
"""Semantic colour class of a text; widgets map it to a theme variable."""

SeverityFilter = Literal["all", "critical", "error", "warning", "info"]
"""Severities the alerts table shows; `all` shows every alert."""

SEVERITY_FILTERS: tuple[SeverityFilter, ...] = ("all", "critical", "error", "warning", "info")
"""Filters in the order `f` cycles through them."""

ALERT_FIXED_WIDTHS = {"severity": 4, "state": 16, "value": 8, "since": 7}
"""Cells of the alerts table's fixed columns; `alert` and `labels` share the rest."""

_MIN_NAME_WIDTH = 12
_MIN_LABELS_WIDTH = 8
_MAX_NAME_WIDTH = 48
_CELL_PADDING = 2
"""Cells `DataTable` adds around each column (one on each side)."""

_SEVERITY_LABELS = {"critical": "crit", "error": "err", "warning": "warn", "info": "info"}
_STATE_LABELS = {"nodata": "no data"}
_ALERT_STATES = frozenset({"firing", "pending", "resolved", "nodata", "error", "inactive"})
_CHANNEL_STATUS: dict[str, Status] = {
    "ok": "ok",
    "degraded": "degraded",
    "failing": "failing",
    "misconfigured": "misconfigured",
}
_MISSING = "—"


@dataclass(frozen=True, slots=True)
class Column:
    """One table column: its key, heading, width in cells and alignment."""

    key: str
    heading: str
    width: int
    justify: Literal["left", "right"] = "left"
    """Numbers are right-aligned, so their digits line up."""


@dataclass(frozen=True, slots=True)
class AlertRowView:
    """One row of the alerts table, ready to print."""

    key: str
    """Row key: the alert id."""
    cells: tuple[str, ...]
    """Cell texts in column order, each within its column's width."""
    severity: Status
    """Colour class of the severity cell."""
    state: Status
    """Colour class of the state cell."""


@dataclass(frozen=True, slots=True)
class ChannelRowView:
    """One row of the channel health table, ready to print."""

    key: str
    """Row key: the channel name."""
    cells: tuple[str, ...]
    """Cell texts in `CHANNEL_COLUMNS` order."""
    state: Status
    """Colour class of the state cell."""


CHANNEL_COLUMNS: tuple[Column, ...] = (
    Column("channel", "Channel", 12),
    Column("state", "State", 13),
    Column("success", "Last ok", 10),
    Column("error", "Last error", 21),
    Column("queue", "Queue", 5, "right"),
    Column("retry", "Retry", 7),
)
"""Columns of the channel health table at 80 columns; `channel_columns` widens `error`."""


def next_filter(current: SeverityFilter) -> SeverityFilter:
    """Return the filter after `current`, wrapping from `info` to `all`."""
    index = SEVERITY_FILTERS.index(current)
    return SEVERITY_FILTERS[(index + 1) % len(SEVERITY_FILTERS)]


def severity_label(severity: str) -> str:
    """Return the short severity text (`crit`, `err`, `warn`, `info`)."""
    return _SEVERITY_LABELS.get(severity, printable(severity))


def display_state(row: AlertRow) -> tuple[str, Status]:
    """Return the state text and its colour class: a silence or an ack outranks `firing`."""
    if row.silenced and row.state != "resolved":
        return "silenced", "silenced"
    if row.acked_by is not None and row.open_incident:
        return f"acked by {printable(row.acked_by)}", "acknowledged"
    status: Status = row.state if row.state in _ALERT_STATES else "muted"  # type: ignore[assignment]
    return _STATE_LABELS.get(row.state, printable(row.state)), status


def format_alert_value(value: float | None) -> str:
    """Format an evaluated value in at most 8 cells: `93`, `0.75`, `1.5M`, `—`."""
    if value is None:
        return _MISSING
    magnitude = abs(value)
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if magnitude >= threshold:
            return f"{value / threshold:.1f}".rstrip("0").rstrip(".") + suffix
    if value == int(value):
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def labels_text(labels: tuple[tuple[str, str], ...]) -> str:
    """Join labels as `key=value` pairs separated by spaces."""
    return " ".join(f"{key}={value}" for key, value in labels)


def alert_columns(width: int) -> tuple[Column, ...]:
    """Lay out the alerts table for a table `width` cells wide (scroll bar excluded).

    The fixed columns keep their width. The alert name gets 55 % of the rest, at most
    `_MAX_NAME_WIDTH`, and the labels get everything left. Both have a minimum.
    """
    fixed = sum(ALERT_FIXED_WIDTHS.values()) + _CELL_PADDING * 6
    spare = max(0, width - fixed)
    name = max(_MIN_NAME_WIDTH, min(_MAX_NAME_WIDTH, spare * 55 // 100))
    labels = max(_MIN_LABELS_WIDTH, spare - name)
    return (
        Column("severity", "Sev", ALERT_FIXED_WIDTHS["severity"]),
        Column("state", "State", ALERT_FIXED_WIDTHS["state"]),
        Column("alert", "Alert", name),
        Column("labels", "Labels", labels),
        Column("value", "Value", ALERT_FIXED_WIDTHS["value"], "right"),
        Column("since", "Since", ALERT_FIXED_WIDTHS["since"]),
    )


def alert_row_views(
    snapshot: AlertsSnapshot, severity_filter: SeverityFilter, columns: tuple[Column, ...]
) -> list[AlertRowView]:
    """Build the rows the filter lets through, in the snapshot's order."""
    return [
        _alert_row_view(row, columns)
        for row in snapshot.rows
        if severity_filter == "all" or row.severity == severity_filter
    ]


def channel_columns(width: int) -> tuple[Column, ...]:
    """Lay out the channel table for `width` cells; the last-error column takes the rest."""
    fixed = sum(column.width for column in CHANNEL_COLUMNS if column.key != "error")
    error_width = max(12, width - fixed - _CELL_PADDING * len(CHANNEL_COLUMNS))
    return tuple(
        Column(column.key, column.heading, error_width) if column.key == "error" else column
        for column in CHANNEL_COLUMNS
    )


def channel_row_views(snapshot: AlertsSnapshot, columns: tuple[Column, ...]) -> list[ChannelRowView]:
    """Build one row per channel: state, last success, last error with its class, queue, retry."""
    return [_channel_row_view(row, snapshot.now, columns) for row in snapshot.channels]


def count_parts(counts: AlertCounts | None) -> list[tuple[str, Status]]:
    """Return the header's firing counts as `(text, status)` parts (`2 crit`, `1 warn`).

    Severities with no firing alert are left out; no firing alert at all gives
    `0 firing`. None (alerts not read yet) gives nothing.
    """
    if counts is None:
        return []
    if counts.total == 0:
        return [("0 firing", "muted")]
    return [
        (f"{counts.of(severity)} {severity_label(severity)}", severity)
        for severity in SEVERITIES
        if counts.of(severity)
    ]


def banner_text(down_for: float) -> str:
    """Return the banner shown while every notification channel is down."""
    return f"All notification channels down for {format_duration_short(down_for)}; critical alerts go to syslog only"


def engine_lines(snapshot: AlertsSnapshot, *, max_problems: int = 3) -> list[tuple[str, Status]]:
    """Return the rule-evaluation status line, then one line per rule in error.

    At most `max_problems` rules are listed; a last line counts the others.
    """
    evaluated = (
        "no evaluation yet" if snapshot.last_evaluation is None
        else f"evaluated {format_age(snapshot.now - snapshot.last_evaluation)}"
    )
    missed: Status = "warning" if snapshot.missed_evaluations else "muted"
    lines: list[tuple[str, Status]] = [
        (f"Rules: {evaluated} · missed evaluations {snapshot.missed_evaluations}", missed)
    ]
    problems = snapshot.rule_problems
    for problem in problems[:max_problems]:
        lines.append((printable(f"rule {problem.rule_id} error: {problem.message}"), "error"))
    if len(problems) > max_problems:
        lines.append((f"{len(problems) - max_problems} more rules in error; run `atlas config check`", "error"))
    return lines


def _alert_row_view(row: AlertRow, columns: tuple[Column, ...]) -> AlertRowView:
    state_text, state_status = display_state(row)
    texts = {
        "severity": severity_label(row.severity),
        "state": state_text,
        "alert": printable(row.rule_name),
        "labels": printable(labels_text(row.labels)),
        "value": format_alert_value(row.value),
        "since": format_duration_short(row.age_seconds),
    }
    severity: Status = row.severity if row.severity in _SEVERITY_LABELS else "muted"  # type: ignore[assignment]
    return AlertRowView(
        key=row.alert_id,
        cells=tuple(truncate_cells(texts[column.key], column.width) for column in columns),
        severity=severity,
        state=state_status,
    )


def _channel_row_view(row: ChannelStatusRow, now: float, columns: tuple[Column, ...]) -> ChannelRowView:
    texts = {
        "channel": printable(row.channel),
        "state": row.state,
        "success": "never" if row.last_success_at is None else format_age(now - row.last_success_at),
        "error": _last_error(row),
        "queue": str(row.queue_depth),
        # A misconfigured channel sends nothing until its config changes, so it has no retry time.
        "retry": _MISSING if row.state == "misconfigured" else _retry(row.next_retry_at, now),
    }
    return ChannelRowView(
        key=row.channel,
        cells=tuple(truncate_cells(texts[column.key], column.width) for column in columns),
        state=_CHANNEL_STATUS.get(row.state, "muted"),
    )


def _last_error(row: ChannelStatusRow) -> str:
    if row.last_error_class is None and row.last_error is None:
        return _MISSING
    parts = [part for part in (row.last_error_class, row.last_error) if part]
    return printable(": ".join(parts))


def _retry(next_retry_at: float | None, now: float) -> str:
    if next_retry_at is None:
        return _MISSING
    if next_retry_at <= now:
        return "now"
    return f"in {format_duration_short(next_retry_at - now)}"
