"""Mobile analytics events: idempotent batch insert, the conflict quarantine and ingest counters.

`atlas_tui.analytics.ingest.store_batch` passes in rows that privacy rules have
already cleaned, so no raw device id, user id or client IP reaches this module.
Invariants: `(app_id, event_id)` is unique for good, so a resent event is reported
as a duplicate and never stored twice. A batch's rows and its counters are written
in one BEGIN IMMEDIATE transaction, so a batch is stored whole or not at all, and
two connections sending the same batch at once store it once.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from storage.db import transaction

__all__ = [
    "CounterKey",
    "add_counters",
    "insert_events",
    "EventRow",
    "StoreOutcome",
    "count_events",
    "counter_key",
    "ingested_apps",
    "read_counters",
    "read_event",
    "store_events",
]

StoreOutcome = Literal["accepted", "duplicate", "conflict"]
"""Outcome for one row: stored, already stored with the same content, or id reused with other content."""

CounterKey = tuple[str, str]
"""A counter's name and canonical JSON labels, as made by `counter_key`."""


@dataclass(slots=True)
class EventRow:
    """One cleaned event, ready to store; times are UTC epoch seconds."""

    app_id: str
    event_id: str
    type: str
    schema_version: int | None
    schema_known: bool
    session_id: str | None
    device_hash: str | None
    user_hash: str | None
    app_version: str | None
    platform: str | None
    privacy_level: str | None
    client_ts: float | None
    sent_at: float | None
    received_at: float
    skew: float | None
    """`sent_at - received_at`: how far the device clock was ahead of the daemon's."""
    event_ts: float
    """Corrected event time, `received_at + (client_ts - sent_at)`, clamped when far in the future."""
    future_clamped: bool
    ip_prefix: str | None
    attrs: str
    """JSON object of the per-type fields (`screen`, `amount`, …)."""
    properties: str
    """JSON object of the properties the privacy level and the wallet guard kept."""
    extra: str | None
    """JSON of unknown fields, or of the whole scrubbed event when its schema is unknown."""
    content_hash: str
    """Keyed hash of the event as received, to tell a resend from a conflicting reuse of its id."""
    redactions: tuple[str, ...] = field(default=(), compare=False)
    """Wallet-guard rules that dropped values from this event; counted only if the row is stored."""


_COLUMNS = (
    "app_id, event_id, type, schema_version, schema_known, session_id, device_hash, user_hash, app_version, "
    "platform, privacy_level, client_ts, sent_at, received_at, skew, event_ts, future_clamped, ip_prefix, attrs, "
    "properties, extra, content_hash"
)
_ROW_MARKS = "(" + ", ".join("?" * 22) + ")"
_ROWS_PER_INSERT = 100
"""Rows per INSERT statement: 2,200 bound values, below SQLite's limit of 32,766."""


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_sql(rows: int) -> str:
    # A plain INSERT: `insert_events` looked the ids up under the write lock, so a
    # unique-key failure here is a fault and rolls the batch back.
    return f"INSERT INTO analytics_events ({_COLUMNS}) VALUES " + ", ".join([_ROW_MARKS] * rows)


_LOOKUP_CHUNK = 500
"""Event ids per lookup query, below SQLite's default limit of 999 bound parameters in old builds."""


def counter_key(name: str, **labels: str) -> CounterKey:
    """Build the key of counter `name` with `labels` in canonical form."""
    return _counter_key(name, tuple(sorted(labels.items())))


@functools.lru_cache(maxsize=1024)
def _counter_key(name: str, labels: tuple[tuple[str, str], ...]) -> CounterKey:
    # Cached: ingestion counts every row under one of a few keys.
    return name, json.dumps(labels, separators=(",", ":"))


def store_events(
    conn: sqlite3.Connection, rows: Sequence[EventRow], counts: Mapping[CounterKey, int], now: float
) -> list[StoreOutcome]:
    """Insert a batch's rows once each and add its counters. **Writes**, one BEGIN IMMEDIATE transaction.

    A row whose `(app_id, event_id)` is already stored is left alone: it is a
    `duplicate` when its content hash matches, else a `conflict`, copied to
    `analytics_quarantine` and counted as `dedup_conflict` and as rejected.

    Args:
        conn: A connection outside any read transaction.
        rows: The batch's valid events.
        counts: Counters to add regardless of outcome, such as rejections by reason.
        now: Receipt time, stored as the counters' `updated_at`.

    Returns:
        One outcome per row, in order.
    """
    totals: Counter[CounterKey] = Counter(counts)
    with transaction(conn):
        outcomes = insert_events(conn, rows, totals)
        add_counters(conn, totals, now)
    return outcomes


def insert_events(conn: sqlite3.Connection, rows: Sequence[EventRow], totals: Counter[CounterKey]) -> list[StoreOutcome]:
    """Insert the rows not stored yet and add their outcomes to `totals`. **Writes**, in the caller's write transaction.

    The caller must hold the write lock (BEGIN IMMEDIATE), so no other connection
    can store one of these ids between the lookup and the insert. The new rows go
    in with one `executemany`; an id repeated inside `rows` counts like a resend.

    Returns:
        One outcome per row, in order.
    """
    stored = _stored_hashes(conn, rows)
    outcomes: list[StoreOutcome] = []
    fresh: list[tuple[object, ...]] = []
    conflicts: list[tuple[object, ...]] = []
    for row in rows:
        key = (row.app_id, row.event_id)
        known = stored.get(key)
        outcome: StoreOutcome
        if known is None:
            stored[key] = row.content_hash
            fresh.append(_values(row))
            outcome = "accepted"
        elif known == row.content_hash:
            outcome = "duplicate"
        else:
            conflicts.append(
                (row.app_id, row.event_id, row.received_at, row.content_hash, known, _quarantine_json(row))
            )
            outcome = "conflict"
        outcomes.append(outcome)
        _count_outcome(totals, row, outcome)
    for offset in range(0, len(fresh), _ROWS_PER_INSERT):
        chunk = fresh[offset : offset + _ROWS_PER_INSERT]
        # One statement for many rows: sqlite3 lets go of the GIL once per statement
        # step, not once per row as `executemany` does, which matters to a writer
        # thread beside a busy event loop.
        conn.execute(_insert_sql(len(chunk)), [value for values in chunk for value in values])
    if conflicts:
        conn.executemany(
            "INSERT INTO analytics_quarantine (app_id, event_id, received_at, content_hash, stored_content_hash, "
            "event) VALUES (?, ?, ?, ?, ?, ?)",
            conflicts,
        )
    return outcomes


def add_counters(conn: sqlite3.Connection, totals: Mapping[CounterKey, int], now: float) -> None:
    """Add `totals` to the ingest counters, stamped `now`. **Writes**, in the caller's transaction."""
    conn.executemany(
        "INSERT INTO analytics_counters (name, labels, value, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value, updated_at = excluded.updated_at",
        [(name, labels, value, now) for (name, labels), value in totals.items() if value],
    )


def ingested_apps(conn: sqlite3.Connection) -> list[str]:
    """Return the ids of the apps that have stored at least one event, from the counters. **Read-only.**

    Receipt-time queries run once per app, because the index on receipt time starts
    with `app_id`; the counters table is small and written with every batch.
    """
    apps: set[str] = set()
    for (labels,) in conn.execute("SELECT labels FROM analytics_counters WHERE name = 'events_accepted'"):
        app = dict(json.loads(labels)).get("app")
        if isinstance(app, str):
            apps.add(app)
    return sorted(apps)


def read_counters(conn: sqlite3.Connection) -> dict[CounterKey, int]:
    """Return every ingest counter by key. **Read-only.**"""
    rows = conn.execute("SELECT name, labels, value FROM analytics_counters").fetchall()
    return {(name, labels): value for name, labels, value in rows}


def count_events(conn: sqlite3.Connection, app_id: str | None = None) -> int:
    """Return the number of stored events, of one app or of all. **Read-only.**"""
    if app_id is None:
        return int(conn.execute("SELECT count(*) FROM analytics_events").fetchone()[0])
    return int(conn.execute("SELECT count(*) FROM analytics_events WHERE app_id = ?", (app_id,)).fetchone()[0])


def read_event(conn: sqlite3.Connection, app_id: str, event_id: str) -> dict[str, object] | None:
    """Return the stored row of one event as a column → value mapping, or None. **Read-only.**"""
    cursor = conn.execute(
        "SELECT * FROM analytics_events WHERE app_id = ? AND event_id = ?", (app_id, event_id)
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return {column[0]: value for column, value in zip(cursor.description, row)}


def _stored_hashes(conn: sqlite3.Connection, rows: Sequence[EventRow]) -> dict[tuple[str, str], str]:
    """Return the content hash of every row's `(app_id, event_id)` that is already stored."""
    ids: dict[str, set[str]] = {}
    for row in rows:
        ids.setdefault(row.app_id, set()).add(row.event_id)
    stored: dict[tuple[str, str], str] = {}
    for app_id, event_ids in ids.items():
        requested = sorted(event_ids)
        for offset in range(0, len(requested), _LOOKUP_CHUNK):
            chunk = requested[offset : offset + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for event_id, content_hash in conn.execute(
                f"SELECT event_id, content_hash FROM analytics_events WHERE app_id = ? AND event_id IN ({marks})",
                (app_id, *chunk),
            ):
                stored[(app_id, event_id)] = content_hash
    return stored


def _values(row: EventRow) -> tuple[object, ...]:
    return (
        row.app_id, row.event_id, row.type, row.schema_version, int(row.schema_known), row.session_id,
        row.device_hash, row.user_hash, row.app_version, row.platform, row.privacy_level, row.client_ts,
        row.sent_at, row.received_at, row.skew, row.event_ts, int(row.future_clamped), row.ip_prefix,
        row.attrs, row.properties, row.extra, row.content_hash,
    )  # fmt: skip


def _count_outcome(totals: Counter[CounterKey], row: EventRow, outcome: StoreOutcome) -> None:
    # Only a stored row counts its warnings, so a resent batch inflates nothing but
    # the duplicate counter.
    if outcome == "conflict":
        totals[counter_key("dedup_conflict", app=row.app_id)] += 1
        totals[counter_key("events_rejected", app=row.app_id, reason="dedup_conflict")] += 1
        return
    totals[counter_key(f"events_{outcome}", app=row.app_id)] += 1
    if outcome != "accepted":
        return
    for rule in row.redactions:
        totals[counter_key("privacy_redactions", rule=rule)] += 1
    if row.future_clamped:
        totals[counter_key("future_clamped", app=row.app_id)] += 1
    if not row.schema_known:
        totals[counter_key("schema_unknown", app=row.app_id)] += 1
    elif row.extra is not None:
        totals[counter_key("unknown_fields", app=row.app_id)] += 1


def _quarantine_json(row: EventRow) -> str:
    data = asdict(row)
    data.pop("redactions")
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
