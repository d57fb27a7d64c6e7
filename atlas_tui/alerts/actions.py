"""Operator actions on alerts: acknowledge, unacknowledge, silence. THE store writes behind every UI.

The console, the CLI and the API all call these functions, so an acknowledgement
is the same write from every interface. Each action runs in one BEGIN IMMEDIATE
transaction holding the instance's new state, its history row and its outbox rows.
The alert service also loads and saves instances inside one such transaction, so
the two serialise on SQLite's write lock. An action works the same with or
without a running daemon, and the daemon never overwrites it.

Actors: the console and CLI pass `default_actor()` (`$SUDO_USER`, else `$USER`), the
API passes its token name. Times are parameters (`now`), UTC epoch seconds.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
from typing import TYPE_CHECKING

from atlas_tui.alerts.cycle import CyclePlanner, placeholder_rule, write_plan
from atlas_tui.alerts.engine import ENGINE_ACTOR, Transition
from atlas_tui.alerts.engine import acknowledge as engine_acknowledge
from atlas_tui.alerts.engine import unacknowledge as engine_unacknowledge
from atlas_tui.alerts.errors import AlertError, AlertStateError
from atlas_tui.alerts.rules import RuleSpec, build_rule
from atlas_tui.alerts.silences import (
    InvalidSilenceError,
    Silencer,
    format_matchers,
    matchable_labels,
    parse_matchers,
)
from storage.alerts import (
    AlertRecord,
    EventRow,
    SilenceRecord,
    StoredInstance,
    get_alert,
    insert_events,
    insert_silence,
    list_alerts,
    list_silences,
    load_instance,
    mark_silence_expired,
)
from storage.db import transaction

if TYPE_CHECKING:
    from atlas_tui.config import Config

__all__ = [
    "AlertNotFoundError",
    "AlertStateError",
    "InvalidSilenceError",
    "SilenceNotFoundError",
    "acknowledge",
    "create_silence",
    "default_actor",
    "expire_silence",
    "unacknowledge",
]


class AlertNotFoundError(AlertError):
    """Raised when an alert id or fingerprint names no alert."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"alert {ref} not found; run `atlas alerts list` to see alert ids")


class SilenceNotFoundError(AlertError):
    """Raised when a silence id names no silence."""

    def __init__(self, silence_id: str) -> None:
        self.silence_id = silence_id
        super().__init__(f"silence {silence_id} not found; run `atlas alerts silences` to see silence ids")


def default_actor() -> str:
    """Return the user to record for console and CLI actions.

    That is `$SUDO_USER`, else `$USER`, else the name of the process's user id (cron,
    systemd and some SSH set-ups leave `$USER` unset), else "unknown".
    """
    named = os.environ.get("SUDO_USER") or os.environ.get("USER")
    if named:
        return named
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "unknown"


def acknowledge(
    conn: sqlite3.Connection, ref: str, *, by: str, message: str, now: float, config: Config
) -> AlertRecord:
    """Acknowledge the open incident of an alert and return the updated alert.

    **Writes**, one BEGIN IMMEDIATE transaction. The first acknowledgement of an
    incident queues an acknowledge notice for each channel that received its firing
    notice, unless the alert is silenced. Acknowledging again replaces the message.

    Args:
        conn: Store connection.
        ref: `alert_<n>`, a fingerprint or a unique fingerprint prefix.
        by: The acknowledging user or API token name.
        message: The operator's note.
        now: Time of the acknowledgement.
        config: The effective config, for the rule's name, labels and channels.

    Raises:
        AlertNotFoundError: `ref` names no alert.
        AlertStateError: the alert has no open incident (it is not firing).
    """
    with transaction(conn):
        stored = _load(conn, ref)
        step = engine_acknowledge(stored.state, by, message, now)
        _write_step(conn, stored, step, now, config)
        return _reread(conn, stored)


def unacknowledge(
    conn: sqlite3.Connection, ref: str, *, by: str, now: float, config: Config
) -> AlertRecord:
    """Remove the acknowledgement of an alert's open incident, so repeats resume.

    **Writes**, one BEGIN IMMEDIATE transaction, with an `unacknowledged` history row.

    Raises:
        AlertNotFoundError: `ref` names no alert.
        AlertStateError: the alert is not acknowledged or its incident is closed.
    """
    with transaction(conn):
        stored = _load(conn, ref)
        step = engine_unacknowledge(stored.state, by, now)
        _write_step(conn, stored, step, now, config)
        return _reread(conn, stored)


def create_silence(
    conn: sqlite3.Connection,
    matchers: str,
    *,
    starts_at: float,
    ends_at: float,
    created_by: str,
    comment: str,
    now: float | None = None,
) -> SilenceRecord:
    """Store a silence and mark the alerts it matches now as silenced.

    **Writes**, one BEGIN IMMEDIATE transaction, with a `silenced` history row for
    each alert it silences at once. The alert service applies it from then on; it
    expires by itself at `ends_at`.

    Args:
        conn: Store connection.
        matchers: Label matchers such as `rule=high_cpu` or `{host="atlas-01"}`.
        starts_at: Start of the silence.
        ends_at: End of the silence; must be after `starts_at` and after `now`.
        created_by: The user or API token name.
        comment: Why the alerts are silenced.
        now: Creation time; None means `starts_at`.

    Raises:
        InvalidSilenceError: the matchers do not parse, match everything, or the
            times are out of order.
    """
    created_at = starts_at if now is None else now
    canonical = format_matchers(parse_matchers(matchers))
    if ends_at <= starts_at or ends_at <= created_at:
        raise InvalidSilenceError(
            f"silence {canonical} ends at {ends_at:.0f}, not after its start {starts_at:.0f} "
            f"and now {created_at:.0f}; give a positive duration such as --for 2h"
        )
    with transaction(conn):
        silence = insert_silence(
            conn,
            canonical,
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
            created_at=created_at,
        )
        _refresh_silenced(conn, created_at, actor=created_by)
    return silence


def expire_silence(conn: sqlite3.Connection, silence_id: str, *, now: float, by: str) -> SilenceRecord:
    """End a silence at `now` and unmark the alerts no other silence matches.

    **Writes**, one BEGIN IMMEDIATE transaction. Expiring an expired silence
    changes nothing and returns it.

    Raises:
        SilenceNotFoundError: `silence_id` names no silence.
    """
    with transaction(conn):
        silence = mark_silence_expired(conn, silence_id, now=now, by=by)
        if silence is None:
            raise SilenceNotFoundError(silence_id)
        _refresh_silenced(conn, now, actor=by)
    return silence


def _load(conn: sqlite3.Connection, ref: str) -> StoredInstance:
    stored = load_instance(conn, ref)
    if stored is None:
        raise AlertNotFoundError(ref)
    return stored


def _reread(conn: sqlite3.Connection, stored: StoredInstance) -> AlertRecord:
    record = get_alert(conn, stored.alert_id)
    if record is None:  # pragma: no cover - the row was written in this transaction
        raise AlertNotFoundError(stored.alert_id)
    return record


def _write_step(
    conn: sqlite3.Connection, stored: StoredInstance, step: Transition, now: float, config: Config
) -> None:
    # The engine addresses acknowledge notices to the channels that received the
    # firing notice, as recorded in the stored instance. Filtering them by this
    # process's config would drop them all when `atlas alerts ack` runs without the
    # daemon's --config. The daemon's sender has the channel config and decides per channel type.
    notices = () if stored.silenced else step.notices
    planner = CyclePlanner(now)
    rule = _rule_for(config, stored)
    planner.record(rule, stored, Transition(step.state, step.events, notices), silenced=stored.silenced)
    write_plan(conn, planner.plan, now)


def _rule_for(config: Config, stored: StoredInstance) -> RuleSpec:
    """Return the instance's rule from the config, or a stand-in when it has none."""
    for raw in config.alert_rules:
        if raw.id == stored.state.rule_id:
            try:
                return build_rule(raw)
            except AlertError:
                break
    return placeholder_rule(stored, config.channels)


def _refresh_silenced(conn: sqlite3.Connection, now: float, *, actor: str) -> None:
    """Set the `silenced` flag of every listed alert from the silences active at `now`."""
    silencer = Silencer(list_silences(conn, now), now)
    changed: list[tuple[AlertRecord, SilenceRecord | None]] = []
    for record in list_alerts(conn):
        labels = matchable_labels(record.rule_id, record.severity, record.labels)
        silence = silencer.match(labels)
        if (silence is not None) != record.silenced:
            changed.append((record, silence))
    if not changed:
        return

    conn.executemany(
        "UPDATE alert_instances SET silenced = ?, updated_at = ? WHERE fingerprint = ?",
        [(int(silence is not None), now, record.fingerprint) for record, silence in changed],
    )
    insert_events(conn, [_silence_event(record, silence, now, actor) for record, silence in changed])


def _silence_event(record: AlertRecord, silence: SilenceRecord | None, now: float, actor: str) -> EventRow:
    if silence is not None:
        kind, who, message = "silenced", silence.created_by, f"{silence.silence_id} {silence.matchers}: {silence.comment}"
    else:
        kind, who, message = "unsilenced", actor or ENGINE_ACTOR, "no active silence matches any more"
    return EventRow(
        alert_id=int(record.alert_id.removeprefix("alert_")),
        fingerprint=record.fingerprint,
        rule_id=record.rule_id,
        incident_id=record.incident_id,
        at=now,
        kind=kind,
        from_state=None,
        to_state=None,
        value=record.value,
        actor=who,
        message=message,
    )

