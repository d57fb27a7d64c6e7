"""Alert view models read from the local store, for `LocalSource`.

`LocalSource` calls these functions in the console's data loop thread with its own
connection. Each is a handful of short autocommit reads through the store's
read-only functions (`storage.alerts`, `storage.outbox`), so the console never
keeps a read transaction open between refreshes and never writes here. The writes behind
`a` and `u` are `atlas_tui.alerts.actions`, which `LocalSource` calls itself.

The rule's annotations and condition are not stored with the alert; they come from
the config, so a rule that left the config shows neither.
"""

from __future__ import annotations

import sqlite3

from atlas_tui.alerts.fallback import FALLBACK_AFTER, all_channels_down
from atlas_tui.config import AlertRule, Config
from atlas_tui.console.alert_models import (
    AlertCounts,
    AlertDetail,
    AlertRow,
    AlertsSnapshot,
    ChannelStatusRow,
    DeliveryRow,
    RuleProblem,
    TimelineEntry,
)
from collectors.base import make_labels
from storage.alerts import AlertEventRecord, AlertRecord, alert_history, get_alert, list_alerts, read_engine_state
from storage.outbox import ChannelHealthRecord, DeliveryRecord, channel_health, deliveries_for_alert

__all__ = ["TIMELINE_LIMIT", "alert_row", "firing_counts", "read_alert_detail", "read_alerts"]

TIMELINE_LIMIT = 200
"""Newest history rows shown on the detail screen; the CLI's `alerts history` shows more."""


def read_alerts(conn: sqlite3.Connection, config: Config, now: float) -> AlertsSnapshot:
    """Read the alerts listing, channel health and engine health at `now`.

    **Read-only**: `list_alerts`, `channel_health` and `read_engine_state`.
    """
    records = list_alerts(conn)
    health = channel_health(conn, now)
    engine = read_engine_state(conn)
    return AlertsSnapshot(
        now=now,
        rows=tuple(alert_row(record, now) for record in records),
        counts=firing_counts(records),
        channels=tuple(_channel_rows(health, config)),
        channels_down_for=_channels_down_for(health, config, now),
        rule_problems=tuple(
            RuleProblem(rule_id, message or "error") for rule_id, status, message in engine.rule_health
            if status == "error"
        ),
        missed_evaluations=engine.missed_evaluations,
        last_evaluation=engine.last_tick,
    )


def read_alert_detail(conn: sqlite3.Connection, config: Config, alert_id: str, now: float) -> AlertDetail | None:
    """Read one alert with its history and deliveries; None when `alert_id` names no alert.

    **Read-only**: `get_alert`, `alert_history` and `deliveries_for_alert`.
    """
    record = get_alert(conn, alert_id)
    if record is None:
        return None
    rule = _rule(config, record.rule_id)
    history = alert_history(conn, record.alert_id, limit=TIMELINE_LIMIT)
    deliveries = deliveries_for_alert(conn, record.alert_id)
    return AlertDetail(
        row=alert_row(record, now),
        now=now,
        fingerprint=record.fingerprint,
        condition=rule.condition if rule else "",
        annotations=tuple(sorted(rule.annotations.items())) if rule else (),
        fired_at=record.fired_at,
        resolved_at=record.resolved_at,
        ack_at=record.ack_at,
        ack_message=record.ack_message,
        timeline=tuple(_timeline_entry(event) for event in history),
        deliveries=tuple(_delivery_row(delivery) for delivery in deliveries),
    )


def alert_row(record: AlertRecord, now: float) -> AlertRow:
    """Build the table row of a stored alert, with its age at `now`."""
    labels = {key: value for key, value in record.labels.items() if key != "alertname"}
    open_incident = record.incident_id is not None and record.resolved_at is None
    return AlertRow(
        alert_id=record.alert_id,
        rule_id=record.rule_id,
        rule_name=record.rule_name or record.rule_id,
        severity=record.severity,
        state=record.state,
        labels=make_labels(labels),
        value=record.value,
        age_seconds=max(0.0, now - _state_since(record)),
        acked_by=record.ack_by if open_incident else None,
        silenced=record.silenced,
        open_incident=open_incident,
        message=record.message,
    )


def _state_since(record: AlertRecord) -> float:
    if record.state == "firing" and record.fired_at is not None:
        return record.fired_at
    if record.state == "resolved" and record.resolved_at is not None:
        return record.resolved_at
    if record.state == "pending" and record.active_since is not None:
        return record.active_since
    return record.updated_at


def firing_counts(records: list[AlertRecord]) -> AlertCounts:
    """Count the firing alerts per severity."""
    firing = [record.severity for record in records if record.state == "firing"]
    return AlertCounts(
        critical=firing.count("critical"),
        error=firing.count("error"),
        warning=firing.count("warning"),
        info=firing.count("info"),
    )


def _channel_rows(health: list[ChannelHealthRecord], config: Config) -> list[ChannelStatusRow]:
    """List configured channels (a channel never used has no health row) and any with a queue."""
    by_name = {record.channel: record for record in health}
    names = sorted(set(config.channels) | set(by_name))
    return [_channel_row(name, by_name.get(name)) for name in names]


def _channel_row(name: str, record: ChannelHealthRecord | None) -> ChannelStatusRow:
    if record is None:
        return ChannelStatusRow(channel=name, state="ok")
    return ChannelStatusRow(
        channel=name,
        state=record.state,
        last_success_at=record.last_success_at,
        last_error_at=record.last_error_at,
        last_error_class=record.last_error_class,
        last_error=record.last_error,
        queue_depth=record.queue_depth,
        next_retry_at=record.next_retry_at,
        dead_letters=record.dead_letters,
    )


def _channels_down_for(health: list[ChannelHealthRecord], config: Config, now: float) -> float | None:
    """Return how long every configured channel has been down, once past `FALLBACK_AFTER`.

    The decision is the syslog fallback's own (`all_channels_down`), so the banner and
    the syslog lines agree.
    """
    if not all_channels_down(health, now, channels=tuple(config.channels), after=FALLBACK_AFTER):
        return None
    starts = [record.failing_since for record in health if record.channel in config.channels]
    latest_start = max((start for start in starts if start is not None), default=now)
    return now - latest_start


def _rule(config: Config, rule_id: str) -> AlertRule | None:
    return next((rule for rule in config.alert_rules if rule.id == rule_id), None)


def _timeline_entry(event: AlertEventRecord) -> TimelineEntry:
    return TimelineEntry(
        at=event.at,
        kind=event.kind,
        from_state=event.from_state,
        to_state=event.to_state,
        value=event.value,
        actor=event.actor,
        message=event.message,
    )


def _delivery_row(delivery: DeliveryRecord) -> DeliveryRow:
    return DeliveryRow(
        channel=delivery.channel,
        kind=delivery.kind,
        status=delivery.status,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_error_class=delivery.last_error_class,
        last_error=delivery.last_error,
        skipped=delivery.skipped,
    )
