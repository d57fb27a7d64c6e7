"""Alert instances, their history and the evaluation loop's state in the store.

The alert service (`atlas_tui.alerts.service`) and the acknowledgement actions
(`atlas_tui.alerts.actions`) write here, always inside their own BEGIN IMMEDIATE
transaction so that a state change, its history rows and its outbox rows commit
together. The CLI, the API, the console and the outbox read through `list_alerts`,
`get_alert`, `alert_history`, `list_silences` and `read_engine_state`, which are
short read-only statements.

Invariants: the store is the source of truth for every instance. The daemon keeps
no copy between cycles, so an acknowledgement written by another process is
never overwritten. An instance keeps its row, and so its public id `alert_<n>`, for
life, across incidents. History rows are kept `EVENT_RETENTION` seconds. Times are
UTC epoch seconds.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from atlas_tui.alerts.state import InstanceState
from storage._alert_codec import StateFormatError, decode_state, encode_state
from storage.db import transaction
from storage.silences import (
    SilenceRecord,
    get_silence,
    insert_silence,
    list_silences,
    mark_silence_expired,
    parse_silence_id,
)

__all__ = [
    "EVENT_RETENTION",
    "AlertEventRecord",
    "AlertRecord",
    "EngineStatus",
    "EventRow",
    "InstanceRow",
    "SilenceRecord",
    "StateFormatError",
    "StoredInstance",
    "alert_history",
    "events_after",
    "delete_old_history",
    "get_alert",
    "get_silence",
    "insert_events",
    "insert_silence",
    "list_alerts",
    "list_silences",
    "load_instance",
    "load_instances",
    "mark_silence_expired",
    "notice_namespace",
    "parse_alert_id",
    "parse_silence_id",
    "read_engine_state",
    "read_engine_value",
    "save_instances",
    "write_engine_state",
]

EVENT_RETENTION = 90 * 86400.0
"""Seconds alert history rows (and expired silences) are kept."""

STATE_ORDER = ("firing", "error", "nodata", "pending", "resolved", "inactive")
"""Order of states in `list_alerts`: what needs action first."""
SEVERITY_ORDER = ("critical", "error", "warning", "info")
"""Order of severities in `list_alerts`, most severe first."""

_ALERT_ID = re.compile(r"alert_(\d+)")
_NAMESPACE_KEY = "notice_namespace"
_MIN_PREFIX = 4
"""Shortest fingerprint prefix `get_alert` accepts, so a typo rarely picks an alert."""

_RECORD_COLUMNS = (
    "id, fingerprint, rule_id, rule_name, severity, labels, state, value, message, "
    "active_since, fired_at, resolved_at, incident_seq, ack_by, ack_at, ack_message, "
    "silenced, last_eval, updated_at"
)
_INSTANCE_COLUMNS = "id, state_json, silenced, updated_at, rule_name, severity"
_EVENT_COLUMNS = (
    "id, alert_id, fingerprint, rule_id, incident_id, at, kind, from_state, to_state, "
    "value, actor, message"
)
_WRITE_COLUMNS = (
    "rule_id, rule_name, severity, labels, state, value, message, active_since, fired_at, "
    "resolved_at, incident_seq, ack_by, ack_at, ack_message, silenced, last_eval, "
    "updated_at, state_json"
)

_INSERT_INSTANCE = f"""
    INSERT INTO alert_instances (fingerprint, {_WRITE_COLUMNS})
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (fingerprint) DO UPDATE SET
        {", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _WRITE_COLUMNS.split(","))}
    RETURNING id
"""

_UPDATE_INSTANCE = f"""
    UPDATE alert_instances SET
        {", ".join(f"{c.strip()} = ?" for c in _WRITE_COLUMNS.split(","))}
     WHERE id = ?
"""

_INSERT_EVENT = """
    INSERT INTO alert_events (alert_id, fingerprint, rule_id, incident_id, at, kind,
                              from_state, to_state, value, actor, message)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_DELETE_OLD_EVENTS = """
    DELETE FROM alert_events WHERE id IN (
        SELECT id FROM alert_events WHERE at < ? ORDER BY at LIMIT ?)
"""

_DELETE_OLD_SILENCES = """
    DELETE FROM silences WHERE id IN (
        SELECT id FROM silences WHERE min(ends_at, coalesce(expired_at, ends_at)) < ? LIMIT ?)
"""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert instance as the console, CLI and API show it."""

    alert_id: str
    """Public id, `alert_<n>`; stable for the instance's life."""
    fingerprint: str
    """sha256 of rule id and sorted labels, 16 hex characters."""
    rule_id: str
    rule_name: str
    severity: str
    labels: dict[str, str]
    """Series labels plus the rule's static labels and `alertname`."""
    state: str
    """inactive, pending, firing, resolved, nodata or error."""
    value: float | None
    message: str | None
    """Reason for the nodata or error state."""
    active_since: float | None
    fired_at: float | None
    resolved_at: float | None
    incident_id: str | None
    """`<fingerprint>-<n>` of the current or latest incident; None before the first."""
    ack_by: str | None
    ack_at: float | None
    ack_message: str | None
    silenced: bool
    """True while an active silence matches the alert; its notices are not queued."""
    last_eval: float | None
    updated_at: float

    @property
    def acknowledged(self) -> bool:
        """Whether the current or latest incident carries an acknowledgement."""
        return self.ack_by is not None


@dataclass(frozen=True, slots=True)
class AlertEventRecord:
    """One row of an alert's history."""

    event_id: int
    alert_id: str
    fingerprint: str
    rule_id: str
    incident_id: str | None
    at: float
    kind: str
    """pending, firing, resolved, inactive, nodata, error, acknowledged, unacknowledged,
    silenced or unsilenced."""
    from_state: str | None
    to_state: str | None
    value: float | None
    actor: str
    """`engine` for evaluations, else the user or API token name."""
    message: str | None


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """Status the evaluation loop recorded at its latest cycle."""

    last_tick: float | None
    """Scheduled time of the latest evaluation; None before the first."""
    missed_evaluations: int
    """Evaluations skipped because the previous one overran the interval."""
    rule_health: list[tuple[str, str, str | None]]
    """(rule id, ok|error|disabled, message) for every rule in the config."""
    last_duration_ms: float | None
    """Wall time of the latest evaluation cycle."""


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """An instance's engine record as loaded for a write, with its row id."""

    row_id: int
    state: InstanceState
    silenced: bool
    updated_at: float
    rule_name: str
    """The rule's name when the row was last written, for rules since removed."""
    severity: str
    """The rule's severity when the row was last written."""

    @property
    def alert_id(self) -> str:
        """The public id, `alert_<row_id>`."""
        return f"alert_{self.row_id}"


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """An instance to save: the engine record plus what the listing shows beside it."""

    state: InstanceState
    rule_name: str
    severity: str
    labels: Mapping[str, str]
    """Display labels: series labels, rule labels and `alertname`."""
    silenced: bool = False
    row_id: int | None = None
    """The row to update; None inserts (or updates by fingerprint)."""


@dataclass(frozen=True, slots=True)
class EventRow:
    """A history row to insert."""

    alert_id: int
    """Row id of the instance (`alert_<alert_id>`)."""
    fingerprint: str
    rule_id: str
    incident_id: str | None
    at: float
    kind: str
    from_state: str | None
    to_state: str | None
    value: float | None
    actor: str
    message: str | None = None


def list_alerts(
    conn: sqlite3.Connection,
    *,
    state: str | Collection[str] | None = None,
    severity: str | Collection[str] | None = None,
    include_inactive: bool = False,
) -> list[AlertRecord]:
    """Return alerts sorted firing first, then by severity (critical first), newest first.

    **Read-only**, one autocommit statement.

    Args:
        conn: Store connection.
        state: Only these states. Besides the engine states, `acknowledged` selects
            acknowledged alerts with an open incident and `silenced` selects silenced ones.
            Naming `inactive` here lists inactive alerts regardless of `include_inactive`.
        severity: Only these severities.
        include_inactive: Also list instances that are inactive.
    """
    states = _as_set(state)
    rows = conn.execute(f"SELECT {_RECORD_COLUMNS} FROM alert_instances").fetchall()
    records = [_record(row) for row in rows]
    severities = _as_set(severity)
    chosen = [
        r
        for r in records
        if _state_selected(r, states, include_inactive)
        and (severities is None or r.severity in severities)
    ]
    return sorted(chosen, key=_listing_order)


def get_alert(conn: sqlite3.Connection, ref: str) -> AlertRecord | None:
    """Return the alert named by `ref`, or None when no single alert matches.

    **Read-only**. `ref` is a public id (`alert_12`), a fingerprint, or a fingerprint
    prefix of at least 4 characters that only one alert has.
    """
    row = _find_row(conn, _RECORD_COLUMNS, ref)
    return _record(row) if row is not None else None


def alert_history(conn: sqlite3.Connection, ref: str, limit: int = 500) -> list[AlertEventRecord]:
    """Return the newest `limit` history rows of the alert named by `ref`, oldest first.

    **Read-only**. An unknown `ref` gives an empty list; use `get_alert` to tell
    the two apart.
    """
    found = _find_row(conn, "fingerprint", ref)
    if found is None:
        return []
    rows = conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM alert_events WHERE fingerprint = ? "
        "ORDER BY at DESC, id DESC LIMIT ?",
        (found[0], limit),
    ).fetchall()
    return [_event_record(row) for row in reversed(rows)]


def events_after(conn: sqlite3.Connection, after_id: int | None, limit: int = 1000) -> tuple[list[AlertEventRecord], int]:
    """Return history rows with an id above `after_id`, oldest first, and the highest id.

    `after_id` None returns no rows, only the highest id, which a reader keeps as its
    starting point. The highest id is 0 in an empty table and is the last row's id
    when `limit` cut the list. **Read-only**, one short deferred transaction.
    """
    with transaction(conn, immediate=False):
        top = int(conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()[0])
        if after_id is None:
            return [], top
        rows = conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM alert_events WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after_id, top, limit),
        ).fetchall()
    records = [_event_record(row) for row in rows]
    return records, (records[-1].event_id if len(records) == limit else max(top, after_id))


def read_engine_state(conn: sqlite3.Connection) -> EngineStatus:
    """Return the evaluation loop's latest status; empty values before its first cycle.

    **Read-only**, one autocommit statement.
    """
    values = {
        key: json.loads(text)
        for key, text in conn.execute("SELECT key, value FROM alert_engine_state").fetchall()
    }
    health = [(str(r[0]), str(r[1]), r[2]) for r in values.get("rule_health") or []]
    return EngineStatus(
        last_tick=values.get("last_tick"),
        missed_evaluations=int(values.get("missed_evaluations") or 0),
        rule_health=health,
        last_duration_ms=values.get("last_duration_ms"),
    )


def read_engine_value(conn: sqlite3.Connection, key: str) -> object:
    """Return one decoded value of `alert_engine_state`, or None. **Read-only**."""
    row = conn.execute("SELECT value FROM alert_engine_state WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row is not None else None


def notice_namespace(conn: sqlite3.Connection) -> str:
    """Return the store's notice namespace, creating it on first use.

    **Writes** once, in the caller's transaction (a savepoint) or its own: 12 random
    hex digits kept in `alert_engine_state`, so notice ids stay stable across
    restarts of this store and differ from those of any other store.
    """
    found = read_engine_value(conn, _NAMESPACE_KEY)
    if isinstance(found, str) and found:
        return found
    namespace = secrets.token_hex(6)
    with transaction(conn):
        conn.execute(
            "INSERT OR IGNORE INTO alert_engine_state (key, value) VALUES (?, ?)",
            (_NAMESPACE_KEY, json.dumps(namespace)),
        )
    stored = read_engine_value(conn, _NAMESPACE_KEY)
    return str(stored)


def write_engine_state(conn: sqlite3.Connection, values: Mapping[str, object]) -> None:
    """Store JSON-encodable values by key, replacing earlier ones.

    **Writes** in the caller's transaction (a savepoint), or in its own. The keys
    `read_engine_state` reads are `last_tick`, `missed_evaluations`, `rule_health`
    (a list of [rule id, status, message]) and `last_duration_ms`.
    """
    rows = [(key, json.dumps(value)) for key, value in values.items()]
    with transaction(conn):
        conn.executemany("INSERT OR REPLACE INTO alert_engine_state (key, value) VALUES (?, ?)", rows)


def load_instances(
    conn: sqlite3.Connection, *, rule_ids: Collection[str] | None = None
) -> list[StoredInstance]:
    """Return the stored engine records, of every rule or of `rule_ids`.

    **Read-only**. Call it inside the write transaction that saves the new states,
    so no other writer can change an instance in between.

    Raises:
        StateFormatError: a stored record cannot be decoded.
    """
    sql = f"SELECT {_INSTANCE_COLUMNS} FROM alert_instances"
    if rule_ids is None:
        rows = conn.execute(sql).fetchall()
    else:
        ids = json.dumps(sorted(rule_ids))
        rows = conn.execute(f"{sql} WHERE rule_id IN (SELECT value FROM json_each(?))", (ids,)).fetchall()
    return [_stored(row) for row in rows]


def load_instance(conn: sqlite3.Connection, ref: str) -> StoredInstance | None:
    """Return the engine record of the alert named by `ref` (see `get_alert`), or None.

    **Read-only**; call it inside the transaction that saves the change.

    Raises:
        StateFormatError: the stored record cannot be decoded.
    """
    row = _find_row(conn, _INSTANCE_COLUMNS, ref)
    return _stored(row) if row is not None else None


def save_instances(conn: sqlite3.Connection, rows: Iterable[InstanceRow], now: float) -> dict[str, int]:
    """Store instance records and return the row id of each by fingerprint.

    **Writes** in the caller's transaction (a savepoint), or in its own. Rows with
    a `row_id` are updated in one batch. The others are inserted, or update the row
    of the same fingerprint.
    """
    ids: dict[str, int] = {}
    updates = []
    with transaction(conn):
        for row in rows:
            values = _write_values(row, now)
            if row.row_id is not None:
                updates.append((*values, row.row_id))
                ids[row.state.fingerprint] = row.row_id
            else:
                inserted = conn.execute(_INSERT_INSTANCE, (row.state.fingerprint, *values)).fetchone()
                ids[row.state.fingerprint] = int(inserted[0])
        conn.executemany(_UPDATE_INSTANCE, updates)
    return ids


def insert_events(conn: sqlite3.Connection, rows: Iterable[EventRow]) -> int:
    """Append history rows and return how many were written.

    **Writes** in the caller's transaction (a savepoint), or in its own.
    """
    values = [
        (
            r.alert_id,
            r.fingerprint,
            r.rule_id,
            r.incident_id,
            r.at,
            r.kind,
            r.from_state,
            r.to_state,
            _finite_or_none(r.value),
            r.actor,
            r.message,
        )
        for r in rows
    ]
    with transaction(conn):
        conn.executemany(_INSERT_EVENT, values)
    return len(values)


def delete_old_history(
    conn: sqlite3.Connection, now: float, keep: float = EVENT_RETENTION, batch_size: int = 500
) -> int:
    """Delete history rows older than `keep` and silences that ended before it.

    **Writes**, in batches of at most `batch_size` rows, each its own BEGIN
    IMMEDIATE transaction, so other writers wait for one short batch at most.
    Returns the number of rows deleted.

    Raises:
        ValueError: `keep` is not positive or `batch_size` is less than 1.
    """
    if keep <= 0 or batch_size < 1:
        raise ValueError(f"invalid retention keep={keep!r} batch_size={batch_size!r}; pass positive values")
    cutoff = now - keep
    deleted = 0
    for statement in (_DELETE_OLD_EVENTS, _DELETE_OLD_SILENCES):
        while True:
            with transaction(conn):
                count = conn.execute(statement, (cutoff, batch_size)).rowcount
            deleted += count
            if count < batch_size:
                break
    return deleted


def parse_alert_id(ref: str) -> int | None:
    """Return n of a public id `alert_<n>`, or None when `ref` has another form."""
    match = _ALERT_ID.fullmatch(ref.strip())
    return int(match.group(1)) if match else None


def _find_row(conn: sqlite3.Connection, columns: str, ref: str) -> tuple[object, ...] | None:
    number = parse_alert_id(ref)
    if number is not None:
        row: tuple[object, ...] | None = conn.execute(
            f"SELECT {columns} FROM alert_instances WHERE id = ?", (number,)
        ).fetchone()
        return row
    text = ref.strip().lower()
    if len(text) < _MIN_PREFIX:
        return None
    # Escaping `%` and `_` turns LIKE into a plain prefix match.
    pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = conn.execute(
        f"SELECT {columns} FROM alert_instances WHERE fingerprint LIKE ? ESCAPE '\\' LIMIT 2",
        (pattern,),
    ).fetchall()
    return rows[0] if len(rows) == 1 else None


def _record(row: Sequence[object]) -> AlertRecord:
    (row_id, fp, rule_id, rule_name, severity, labels, state, value, message,
     active_since, fired_at, resolved_at, incident_seq, ack_by, ack_at, ack_message,
     silenced, last_eval, updated_at) = row
    seq = int(incident_seq)  # type: ignore[call-overload]
    return AlertRecord(
        alert_id=f"alert_{row_id}",
        fingerprint=str(fp),
        rule_id=str(rule_id),
        rule_name=str(rule_name),
        severity=str(severity),
        labels=json.loads(str(labels)),
        state=str(state),
        value=value,  # type: ignore[arg-type]
        message=message,  # type: ignore[arg-type]
        active_since=active_since,  # type: ignore[arg-type]
        fired_at=fired_at,  # type: ignore[arg-type]
        resolved_at=resolved_at,  # type: ignore[arg-type]
        incident_id=f"{fp}-{seq}" if seq else None,
        ack_by=ack_by,  # type: ignore[arg-type]
        ack_at=ack_at,  # type: ignore[arg-type]
        ack_message=ack_message,  # type: ignore[arg-type]
        silenced=bool(silenced),
        last_eval=last_eval,  # type: ignore[arg-type]
        updated_at=float(updated_at),  # type: ignore[arg-type]
    )


def _event_record(row: Sequence[object]) -> AlertEventRecord:
    event_id, alert_id, fp, rule_id, incident_id, at, kind, from_state, to_state, value, actor, message = row
    return AlertEventRecord(
        event_id=int(event_id),  # type: ignore[call-overload]
        alert_id=f"alert_{alert_id}",
        fingerprint=str(fp),
        rule_id=str(rule_id),
        incident_id=incident_id,  # type: ignore[arg-type]
        at=float(at),  # type: ignore[arg-type]
        kind=str(kind),
        from_state=from_state,  # type: ignore[arg-type]
        to_state=to_state,  # type: ignore[arg-type]
        value=value,  # type: ignore[arg-type]
        actor=str(actor),
        message=message,  # type: ignore[arg-type]
    )


def _stored(row: Sequence[object]) -> StoredInstance:
    row_id, state_json, silenced, updated_at, rule_name, severity = row
    return StoredInstance(
        row_id=int(row_id),  # type: ignore[call-overload]
        state=decode_state(str(state_json)),
        silenced=bool(silenced),
        updated_at=float(updated_at),  # type: ignore[arg-type]
        rule_name=str(rule_name),
        severity=str(severity),
    )


def _write_values(row: InstanceRow, now: float) -> tuple[object, ...]:
    s = row.state
    ack = s.ack
    return (
        s.rule_id,
        row.rule_name,
        row.severity,
        json.dumps(dict(row.labels), sort_keys=True, ensure_ascii=False),
        str(s.state),
        _finite_or_none(s.value),
        s.message,
        s.active_since,
        s.fired_at,
        s.resolved_at,
        s.incident_seq,
        ack.by if ack else None,
        ack.at if ack else None,
        ack.message if ack else None,
        int(row.silenced),
        s.last_eval,
        now,
        encode_state(s),
    )


def _finite_or_none(value: float | None) -> float | None:
    # SQLite stores NaN as NULL anyway; infinities become NULL too, so every reader
    # sees "no value" the same way. The full value stays in `state_json`.
    return value if value is not None and math.isfinite(value) else None


def _as_set(value: str | Collection[str] | None) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def _state_selected(record: AlertRecord, states: set[str] | None, include_inactive: bool) -> bool:
    if states is None:
        return include_inactive or record.state != "inactive"
    if record.state in states:
        return True
    open_incident = record.incident_id is not None and record.resolved_at is None
    if "acknowledged" in states and record.acknowledged and open_incident:
        return True
    return "silenced" in states and record.silenced


def _listing_order(record: AlertRecord) -> tuple[int, int, float]:
    state_rank = STATE_ORDER.index(record.state) if record.state in STATE_ORDER else len(STATE_ORDER)
    severity_rank = (
        SEVERITY_ORDER.index(record.severity) if record.severity in SEVERITY_ORDER else len(SEVERITY_ORDER)
    )
    started = record.fired_at or record.active_since or record.updated_at
    return (state_rank, severity_rank, -started)
