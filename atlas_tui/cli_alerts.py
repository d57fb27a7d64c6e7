"""The alerting commands of `atlas`: `alerts …`, `notify test` and the rule part of `config check`.

`atlas_tui.cli` parses the arguments and calls `run_alerts`, `notify_test` and
`check_alerting` here. Writes (ack, unack, silence, unsilence) go through
`atlas_tui.alerts.actions`, the same functions the console and the API call, so all
three record the same events and queue the same notices. Reads use the read-only
functions of `storage.alerts` and `storage.outbox`.

Invariants: each command opens its own store connection and closes it when the
command ends; the daemon may run at the same time. Timestamps are UTC epoch seconds and are printed in UTC. The
`--json` output of `list` and `history` is the `AlertView` and `AlertHistoryView`
models, which `atlas_tui.api.alerts` also returns, so scripts can switch between the
CLI and the API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel

from atlas_tui.alerts.actions import (
    AlertNotFoundError,
    acknowledge,
    create_silence,
    default_actor,
    expire_silence,
    unacknowledge,
)
from atlas_tui.alerts.channels.probe import describe_result, send_test
from atlas_tui.alerts.errors import AlertStateError
from atlas_tui.alerts.rules import load_rules
from atlas_tui.alerts.sources import KNOWN_METRICS
from atlas_tui.config import Config
from atlas_tui.durations import format_duration
from atlas_tui.errors import AtlasError, ConfigError
from storage.alerts import (
    AlertEventRecord,
    AlertRecord,
    SilenceRecord,
    alert_history,
    get_alert,
    list_alerts,
    list_silences,
)
from storage.db import DB_FILENAME, open_store
from storage.errors import StorageError
from storage.metrics import list_series
from storage.outbox import DeliveryRecord, deliveries_for_alert

__all__ = [
    "KNOWN_METRICS",
    "AlertActionError",
    "AlertHistoryView",
    "AlertView",
    "AlertingCheck",
    "DeliveryView",
    "EventView",
    "NoStoreError",
    "SilenceView",
    "UnknownAlertError",
    "check_alerting",
    "notify_test",
    "read_history",
    "run_alerts",
    "stored_metric_names",
]

# `atlas config check` warns about a metric outside KNOWN_METRICS, unless the store given
# by --data-dir contains it.


class UnknownAlertError(AtlasError):
    """Raised when an alert id or fingerprint matches no alert in the store."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f'alert {ref} not found; run "atlas alerts list --all" to see ids')


class AlertActionError(AtlasError):
    """Raised when an acknowledgement does not apply to the alert's state. The message names the id as typed."""


class NoStoreError(AtlasError):
    """Raised when the data directory has no store file, or the store cannot be read."""


# --- JSON shapes shared with the HTTP API ------------------------------------------------


class AlertView(BaseModel):
    """One alert instance as `atlas alerts list --json` and `GET /api/alerts` return it.

    Every time is given twice: as UTC epoch seconds and, in the `*_iso` field, as
    ISO 8601 UTC text. Both are null when the time is unset.
    """

    alert_id: str
    """Public id, `alert_<n>`; stable across incidents of the same instance."""
    fingerprint: str
    """16 hex characters derived from the rule id and the labels."""
    rule_id: str
    rule_name: str
    severity: str
    """One of info, warning, error, critical."""
    labels: dict[str, str]
    state: str
    """One of inactive, pending, firing, resolved, nodata, error."""
    value: float | None
    """Value of the latest evaluation that had one."""
    message: str | None
    """Reason for a nodata or error state."""
    active_since: float | None
    active_since_iso: str | None
    fired_at: float | None
    fired_at_iso: str | None
    resolved_at: float | None
    resolved_at_iso: str | None
    incident_id: str | None
    """`<fingerprint>-<n>` of the current or latest incident; null before the first firing."""
    ack_by: str | None
    """User who acknowledged the open incident; null when it is not acknowledged."""
    ack_at: float | None
    ack_at_iso: str | None
    ack_message: str | None
    silenced: bool
    """True while a silence matches the alert: it is evaluated, but no notice is sent."""
    last_eval: float | None
    last_eval_iso: str | None
    updated_at: float | None
    updated_at_iso: str | None

    @classmethod
    def from_record(cls, record: AlertRecord) -> AlertView:
        """Convert a store record, adding the ISO 8601 form of each time."""
        return cls(
            alert_id=record.alert_id,
            fingerprint=record.fingerprint,
            rule_id=record.rule_id,
            rule_name=record.rule_name,
            severity=record.severity,
            labels=dict(record.labels),
            state=record.state,
            value=record.value,
            message=record.message,
            incident_id=record.incident_id,
            ack_by=record.ack_by,
            ack_message=record.ack_message,
            silenced=bool(record.silenced),
            **_times(record, ("active_since", "fired_at", "resolved_at", "ack_at", "last_eval", "updated_at")),
        )


class EventView(BaseModel):
    """One entry of an alert's history: a transition, an acknowledgement or a silence."""

    at: float
    at_iso: str | None
    kind: str
    """`pending`, `firing`, `resolved`, `acknowledged`, `unacknowledged` and so on."""
    from_state: str | None
    to_state: str | None
    value: float | None
    actor: str
    """`engine` for evaluations; the user or `api` for acknowledgements."""
    message: str | None
    incident_id: str | None

    @classmethod
    def from_record(cls, record: AlertEventRecord) -> EventView:
        """Convert a store record."""
        return cls(
            at=record.at,
            at_iso=_iso(record.at),
            kind=record.kind,
            from_state=record.from_state,
            to_state=record.to_state,
            value=record.value,
            actor=record.actor,
            message=record.message,
            incident_id=record.incident_id,
        )


class DeliveryView(BaseModel):
    """One notice about the alert on one channel, with the result of its latest attempt."""

    notice_id: str
    """Idempotency key of the notice; a webhook receives it as `webhook-id`."""
    channel: str
    kind: str
    """`firing`, `resolved`, `repeat` or `acknowledge`."""
    status: str
    """`pending`, `delivered`, `skipped` (the channel takes no notice of this kind), `dead` or `held`."""
    attempts: int
    created_at: float
    created_at_iso: str | None
    last_attempt_at: float | None
    last_attempt_at_iso: str | None
    delivered_at: float | None
    delivered_at_iso: str | None
    last_error_class: str | None
    """Named failure class of the latest failed attempt, such as `http_not_found`."""
    last_error: str | None
    http_status: int | None

    @classmethod
    def from_record(cls, record: DeliveryRecord) -> DeliveryView:
        """Convert an outbox record."""
        return cls(
            notice_id=record.notice_id,
            channel=record.channel,
            kind=record.kind,
            status="skipped" if record.skipped else record.status,
            attempts=record.attempts,
            last_error_class=record.last_error_class,
            last_error=record.last_error,
            http_status=record.http_status,
            **_times(record, ("created_at", "last_attempt_at", "delivered_at")),
        )


class AlertHistoryView(BaseModel):
    """`atlas alerts history --json` and `GET /api/alerts/{id}/history`."""

    alert: AlertView
    events: list[EventView]
    """Oldest first."""
    deliveries: list[DeliveryView]
    """Notices queued for the alert, one entry per notice and channel."""


class SilenceView(BaseModel):
    """One silence as `atlas alerts silences --json` prints it."""

    silence_id: str
    """Public id, `silence_<n>`."""
    matchers: str
    starts_at: float
    starts_at_iso: str | None
    ends_at: float
    ends_at_iso: str | None
    created_by: str
    comment: str
    created_at: float
    created_at_iso: str | None
    expired_at: float | None
    """When the silence was ended early with `atlas alerts unsilence`; null otherwise."""
    expired_at_iso: str | None


# --- config check -----------------------------------------------------------------------


@dataclass(frozen=True)
class AlertingCheck:
    """Problems `atlas config check` found in the alert rules and channels."""

    errors: list[str] = field(default_factory=list)
    """Rules that cannot load (syntax, invalid field, duplicate id); each makes the check fail."""
    warnings: list[str] = field(default_factory=list)
    """Unknown metrics and unconfigured channels; the daemon still runs such rules."""


def check_alerting(config: Config, stored_metrics: Iterable[str] = ()) -> AlertingCheck:
    """Load every rule as the daemon would and sort the problems into errors and warnings.

    Args:
        config: The validated config.
        stored_metrics: Metric names found in a store, known in addition to `KNOWN_METRICS`.
    """
    structural = load_rules(config.alert_rules)
    known = KNOWN_METRICS | frozenset(stored_metrics)
    with_metrics = load_rules(config.alert_rules, known_metrics=known)

    errors = [h.message or f"rule {h.rule_id}: invalid" for h in structural.health if h.status == "error"]
    # Both loads return one health entry per rule in config order, so a rule that
    # only fails the second load fails on its metric names alone.
    warnings = [
        f"warning: {second.message}"
        for first, second in zip(structural.health, with_metrics.health, strict=True)
        if first.status != "error" and second.status == "error"
    ]
    warnings += [
        f'warning: rule {rule_id}: channel "{name}" is not configured; '
        f'add it under "channels" or remove it from the rule\'s "channels"'
        for rule_id, name in config.unconfigured_channels()
    ]
    return AlertingCheck(errors, warnings)


def stored_metric_names(data_dir: Path) -> set[str]:
    """Return the metric names stored in `data_dir`'s store.

    Raises:
        NoStoreError: the store file is missing or cannot be read.
    """
    with _store(data_dir) as conn:
        return {name for name, _labels in list_series(conn)}


# --- notify test ------------------------------------------------------------------------


def notify_test(config: Config, source: str, channel: str, out: TextIO, err: TextIO) -> bool:
    """Send a labelled test notice to `channel` and print the latency and the response.

    The result goes to `out` when the notice was delivered, and to `err` otherwise.

    Returns:
        True when the channel accepted the notice.

    Raises:
        ConfigError: `channel` is not in the config's `channels`; the message lists
            the configured names.
    """
    settings = config.channels.get(channel)
    if settings is None:
        raise ConfigError(source, [_unknown_channel(channel, config)])

    result = asyncio.run(send_test(channel, settings))
    print(describe_result(channel, result), file=out if result.ok else err)
    return result.ok


def _unknown_channel(channel: str, config: Config) -> str:
    if not config.channels:
        return f'channel "{channel}" is not configured, and the config has no "channels" section; add one'
    names = ", ".join(sorted(config.channels))
    return f'channel "{channel}" is not configured; configured channels: {names}'


# --- atlas alerts -----------------------------------------------------------------------


def run_alerts(args: argparse.Namespace, config: Config, data_dir: Path, *, now: float, out: TextIO) -> None:
    """Run one `atlas alerts` action against the store in `data_dir`.

    Args:
        args: Parsed arguments; `args.alerts_command` names the action.
        config: The validated config; acknowledgements use its rules and channels.
        data_dir: Data directory whose store is read and written.
        now: UTC epoch seconds used as the time of writes and for ages.
        out: Stream for tables and JSON.

    Raises:
        NoStoreError: the store does not exist or cannot be read.
        UnknownAlertError: the alert id or fingerprint is not in the store.
        AlertError: the action does not apply, such as acking a resolved alert.
    """
    action = _ACTIONS[args.alerts_command]
    with _store(data_dir) as conn:
        action(conn, args, config, now, out)


def _list(conn: sqlite3.Connection, args: argparse.Namespace, config: Config, now: float, out: TextIO) -> None:
    records = list_alerts(conn, state=args.state, severity=args.severity, include_inactive=args.all)
    if args.json:
        _print_json([AlertView.from_record(record) for record in records], out)
        return
    if not records:
        scope = "alerts" if args.all or args.state else "alerts; --all includes inactive ones"
        print(f"no {scope}", file=out)
        return
    rows = [_alert_row(record, now) for record in records]
    _print_table(("ID", "SEVERITY", "STATE", "RULE", "LABELS", "VALUE", "AGE"), rows, out, right={5, 6})


def _ack(conn: sqlite3.Connection, args: argparse.Namespace, config: Config, now: float, out: TextIO) -> None:
    with _resolving(args.id, "acknowledge"):
        record = acknowledge(conn, args.id, by=default_actor(), message=args.message, now=now, config=config)
    print(f"{record.alert_id} acknowledged by {record.ack_by}", file=out)


def _unack(conn: sqlite3.Connection, args: argparse.Namespace, config: Config, now: float, out: TextIO) -> None:
    with _resolving(args.id, "unacknowledge"):
        record = unacknowledge(conn, args.id, by=default_actor(), now=now, config=config)
    print(f"{record.alert_id} is no longer acknowledged", file=out)


def _history(conn: sqlite3.Connection, args: argparse.Namespace, config: Config, now: float, out: TextIO) -> None:
    view = read_history(conn, args.id)
    if args.json:
        _print_json(view, out)
        return
    _print_history(view, out)


def _silence(conn: sqlite3.Connection, args: argparse.Namespace, config: Config, now: float, out: TextIO) -> None:
    matchers = ", ".join(args.match)
    record = create_silence(
        conn, matchers, starts_at=now, ends_at=now + args.duration, created_by=default_actor(), comment=args.comment
    )
    ends = _iso(record.ends_at)
    print(f"{record.silence_id} silences {record.matchers} until {ends} ({format_duration(args.duration)})", file=out)


def _silences(conn: sqlite3.Connection, args: argparse.Namespace, config: Config, now: float, out: TextIO) -> None:
    records = list_silences(conn, now, include_expired=args.all)
    if args.json:
        _print_json([_silence_view(record) for record in records], out)
        return
    if not records:
        print("no active silences" if not args.all else "no silences", file=out)
        return
    rows = [_silence_row(record, now) for record in records]
    _print_table(("ID", "MATCHERS", "STATE", "STARTS (UTC)", "ENDS (UTC)", "CREATED BY", "COMMENT"), rows, out)


def _unsilence(conn: sqlite3.Connection, args: argparse.Namespace, config: Config, now: float, out: TextIO) -> None:
    expire_silence(conn, args.silence_id, now=now, by=default_actor())
    print(f"{args.silence_id} expired", file=out)


_ACTIONS = {
    "list": _list,
    "ack": _ack,
    "unack": _unack,
    "history": _history,
    "silence": _silence,
    "silences": _silences,
    "unsilence": _unsilence,
}


def read_history(conn: sqlite3.Connection, ref: str) -> AlertHistoryView:
    """Read an alert, its transitions and its notification deliveries.

    Raises:
        UnknownAlertError: `ref` matches no alert.
    """
    record = get_alert(conn, ref)
    if record is None:
        raise UnknownAlertError(ref)
    events = [EventView.from_record(event) for event in alert_history(conn, ref)]
    deliveries = [DeliveryView.from_record(d) for d in deliveries_for_alert(conn, record.alert_id)]
    return AlertHistoryView(alert=AlertView.from_record(record), events=events, deliveries=deliveries)


# --- store access -----------------------------------------------------------------------


@contextmanager
def _store(data_dir: Path) -> Iterator[sqlite3.Connection]:
    path = data_dir / DB_FILENAME
    if not path.is_file():
        raise NoStoreError(f"no store at {path}; start `atlas daemon --data-dir {data_dir}` or check --data-dir")
    try:
        conn = open_store(data_dir)
    except (sqlite3.Error, StorageError) as err:
        raise NoStoreError(f"cannot open the store {path}: {err}") from err
    try:
        yield conn
    except sqlite3.Error as err:
        raise NoStoreError(f"cannot use the store {path}: {err}") from err
    finally:
        conn.close()


@contextmanager
def _resolving(ref: str, verb: str) -> Iterator[None]:
    """Name the id the user typed in the actions' errors, with the command to run."""
    try:
        yield
    except AlertNotFoundError as err:
        raise UnknownAlertError(ref) from err
    except AlertStateError as err:
        raise AlertActionError(f"cannot {verb} {ref}: {err}") from err


def _silence_view(record: SilenceRecord) -> SilenceView:
    return SilenceView(
        silence_id=record.silence_id,
        matchers=record.matchers,
        created_by=record.created_by,
        comment=record.comment,
        **_times(record, ("starts_at", "ends_at", "created_at", "expired_at")),
    )


# --- text output ------------------------------------------------------------------------


def _alert_row(record: AlertRecord, now: float) -> tuple[str, ...]:
    marks = []
    if record.ack_by:
        marks.append(f"acked by {record.ack_by}")
    if record.silenced:
        marks.append("silenced")
    state = f"{record.state} ({', '.join(marks)})" if marks else record.state
    value = "-" if record.value is None else f"{record.value:.2f}"
    return (record.alert_id, record.severity, state, record.rule_id, _labels(record.labels), value,
            _age(now, _started(record)))


def _started(record: AlertRecord) -> float | None:
    """Return the start of the alert's current state, from which the table's age counts."""
    if record.state == "firing":
        return record.fired_at
    if record.state == "resolved":
        return record.resolved_at
    return record.active_since or record.updated_at


def _silence_row(record: SilenceRecord, now: float) -> tuple[str, ...]:
    state: str = record.status(now)
    if state == "active":
        state = f"active, {_age(record.ends_at, now)} left"
    return (record.silence_id, record.matchers, state, _when(record.starts_at), _when(record.ends_at),
            record.created_by, record.comment)


def _print_history(view: AlertHistoryView, out: TextIO) -> None:
    alert = view.alert
    print(f"{alert.alert_id}  {alert.rule_id}  {alert.state}  {alert.severity}", file=out)
    print(f"labels: {_labels(alert.labels)}", file=out)
    print(f"fingerprint: {alert.fingerprint}  incident: {alert.incident_id or '-'}", file=out)
    if alert.ack_by:
        print(f"acknowledged by {alert.ack_by} at {_when(alert.ack_at)} UTC: {alert.ack_message or '-'}", file=out)
    print(file=out)

    rows = [
        (_when(e.at), e.kind, _change(e), "-" if e.value is None else f"{e.value:.2f}", e.actor, e.message or "")
        for e in view.events
    ]
    _print_table(("TIME (UTC)", "EVENT", "FROM → TO", "VALUE", "ACTOR", "MESSAGE"), rows or [("-",) * 6], out, right={3})
    print(file=out)

    if not view.deliveries:
        print("notifications: none queued", file=out)
        return
    print("notifications:", file=out)
    deliveries = [
        (d.channel, d.kind, d.status, str(d.attempts), _when(d.delivered_at), d.last_error_class or "", d.last_error or "")
        for d in view.deliveries
    ]
    header = ("CHANNEL", "NOTICE", "STATUS", "ATTEMPTS", "DELIVERED (UTC)", "ERROR CLASS", "LAST ERROR")
    _print_table(header, deliveries, out, right={3})


def _change(event: EventView) -> str:
    if event.from_state is None and event.to_state is None:
        return "-"
    return f"{event.from_state or '-'} → {event.to_state or '-'}"


def _print_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO, right: Collection[int] = ()
) -> None:
    """Print a table with columns as wide as their longest cell; `right` aligns numbers."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    for line in table:
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)


def _print_json(value: BaseModel | Sequence[BaseModel], out: TextIO) -> None:
    if isinstance(value, BaseModel):
        print(value.model_dump_json(indent=2), file=out)
        return
    print(json.dumps([item.model_dump(mode="json") for item in value], indent=2), file=out)


def _labels(labels: dict[str, str]) -> str:
    # `alertname` repeats the rule id, which the tables already show in their own column.
    pairs = sorted((key, value) for key, value in labels.items() if key != "alertname")
    return ",".join(f"{key}={value}" for key, value in pairs) or "-"


def _age(now: float, since: float | None) -> str:
    if since is None:
        return "-"
    seconds = max(0, int(now - since))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _times(record: object, names: Sequence[str]) -> dict[str, float | str | None]:
    fields: dict[str, float | str | None] = {}
    for name in names:
        ts = getattr(record, name)
        fields[name] = ts
        fields[f"{name}_iso"] = _iso(ts)
    return fields
