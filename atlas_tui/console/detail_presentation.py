"""Display models for the alert detail screen: field rows, the timeline and the deliveries.

`AlertDetailScreen` calls these pure functions on the UI thread with the
`AlertDetail` the data worker read. Times are printed in UTC to the second. Text
from the config, the host or a receiver passes through `printable`. Timeline and
delivery lines are padded to fixed columns so they line up, and the screen cuts
each line at its width.
"""

from __future__ import annotations

from atlas_tui.console.alert_models import AlertDetail, DeliveryRow, TimelineEntry
from atlas_tui.console.alert_presentation import (
    Status,
    display_state,
    format_alert_value,
    labels_text,
)
from atlas_tui.console.formatting import format_duration_short, format_utc, pad_cells, printable

__all__ = ["DetailLine", "delivery_lines", "detail_fields", "detail_title", "timeline_lines"]

DetailLine = tuple[str, Status | None]
"""One line of text and its colour class (None for the default colour)."""

_CHANNEL_WIDTH = 12
_KIND_WIDTH = 12
_STATUS_WIDTH = 10
_EVENT_WIDTH = 15
_DELIVERY_STATUS: dict[str, Status] = {
    "delivered": "ok",
    "pending": "pending",
    "held": "misconfigured",
    "dead": "failing",
}
_SEVERITIES = frozenset({"critical", "error", "warning", "info"})
_EVENT_STATUS: dict[str, Status] = {
    "firing": "firing",
    "pending": "pending",
    "resolved": "resolved",
    "acknowledged": "acknowledged",
    "silenced": "silenced",
    "nodata": "nodata",
    "error": "error",
}
_ANNOTATION_TITLES = {"summary": "Summary", "description": "Description", "runbook_url": "Runbook"}


def detail_title(detail: AlertDetail) -> str:
    """Return the screen's title line: `alert_3  Disk full`."""
    return printable(f"{detail.row.alert_id}  {detail.row.rule_name}")


def detail_fields(detail: AlertDetail) -> list[tuple[str, str, Status | None]]:
    """Return `(name, value, status)` rows: state, severity, value, labels, annotations, ack."""
    row = detail.row
    state_text, state_status = display_state(row)
    fields: list[tuple[str, str, Status | None]] = [
        ("State", _state_line(detail, state_text), state_status),
        ("Severity", printable(row.severity), row.severity if row.severity in _SEVERITIES else None),
        ("Value", format_alert_value(row.value), None),
    ]
    if row.message:
        fields.append(("Reason", printable(row.message), "warning"))
    fields.append(("Labels", printable(labels_text(row.labels)) or "—", None))
    fields.append(("Rule", printable(f"{row.rule_id}: {detail.condition}" if detail.condition else row.rule_id), None))
    for key, value in detail.annotations:
        fields.append((_ANNOTATION_TITLES.get(key, printable(key)), printable(value), None))
    if row.acked_by is not None and detail.ack_at is not None:
        fields.append(("Acked", _ack_line(row.acked_by, detail.ack_at, detail.ack_message), "acknowledged"))
    if row.silenced:
        fields.append(("Silenced", "yes: notices are not sent (see `atlas alerts silences`)", "silenced"))
    fields.append(("Fingerprint", detail.fingerprint or "—", None))
    return fields


def timeline_lines(detail: AlertDetail) -> list[DetailLine]:
    """Return one line per stored event, oldest first, or a note that there are none."""
    if not detail.timeline:
        return [("no transitions stored", "muted")]
    return [_timeline_line(entry) for entry in detail.timeline]


def delivery_lines(detail: AlertDetail) -> list[DetailLine]:
    """Return one line per notice and channel with its latest outcome, oldest first."""
    if not detail.deliveries:
        return [("no notifications queued for this alert", "muted")]
    return [_delivery_line(delivery, detail.now) for delivery in detail.deliveries]


def _state_line(detail: AlertDetail, state_text: str) -> str:
    row = detail.row
    since = format_duration_short(row.age_seconds)
    if row.state == "resolved" and detail.resolved_at is not None:
        return f"resolved {since} ago, at {format_utc(detail.resolved_at)} UTC"
    if row.state == "firing" and detail.fired_at is not None:
        firing = f"firing for {since} since {format_utc(detail.fired_at)} UTC"
        return firing if state_text == "firing" else f"{state_text}, {firing}"
    return f"{state_text} for {since}"


def _ack_line(by: str, at: float, message: str | None) -> str:
    note = f": {message}" if message else ""
    return printable(f"by {by} at {format_utc(at)} UTC{note}")


def _timeline_line(entry: TimelineEntry) -> DetailLine:
    parts = []
    if entry.from_state or entry.to_state:
        parts.append(f"{entry.from_state or '—'} → {entry.to_state or '—'}")
    if entry.value is not None:
        parts.append(f"value {format_alert_value(entry.value)}")
    by = f"by {entry.actor}" if entry.actor != "engine" else ""
    if by or entry.message:
        parts.append(": ".join(part for part in (by, entry.message) if part))
    text = f"{format_utc(entry.at)}  {pad_cells(entry.kind, _EVENT_WIDTH)}{'  '.join(parts)}"
    return printable(text.rstrip()), _EVENT_STATUS.get(entry.kind)


def _delivery_line(delivery: DeliveryRow, now: float) -> DetailLine:
    attempts = f"{delivery.attempts} attempt" + ("" if delivery.attempts == 1 else "s")
    text = (
        f"{pad_cells(printable(delivery.channel), _CHANNEL_WIDTH)} {pad_cells(delivery.kind, _KIND_WIDTH)} "
        f"{pad_cells(delivery.status, _STATUS_WIDTH)} {pad_cells(attempts, 11)} {_delivery_result(delivery, now)}"
    )
    status: Status | None = "muted" if delivery.skipped else _DELIVERY_STATUS.get(delivery.status)
    if delivery.status == "pending" and delivery.last_error_class:
        status = "failing"
    return printable(text.rstrip()), status


def _delivery_result(delivery: DeliveryRow, now: float) -> str:
    if delivery.skipped:
        return "skipped: the channel does not send this kind of notice"
    if delivery.status == "delivered" and delivery.delivered_at is not None:
        return f"at {format_utc(delivery.delivered_at)} UTC"
    error = ": ".join(part for part in (delivery.last_error_class, delivery.last_error) if part)
    if delivery.status == "pending" and delivery.attempts == 0:
        return "queued, not tried yet"
    if delivery.status == "pending" and delivery.next_attempt_at is not None:
        wait = max(0.0, delivery.next_attempt_at - now)
        retry = "next try now" if wait == 0 else f"next try in {format_duration_short(wait)}"
        return f"{error}; {retry}" if error else retry
    return error or "—"
