"""The notification outbox: queued notices per channel, their delivery attempts and channel health.

Where this sits: the alert service and `atlas_tui.alerts.actions` call `enqueue`
inside the transaction that records an alert's state change, so a notice exists
exactly when its transition was committed. The outbox sender
(`atlas_tui.alerts.outbox`) takes due rows with `next_due`, sends them and stores
each outcome with `record_attempt`. The console, the CLI and the API read
`channel_health`, `deliveries_for_alert`, `delivery_attempts` and `dead_letters`.
The daemon's maintenance calls `apply_outbox_retention`.

Invariants:

- A row stays `pending` until the outcome of an attempt is committed. A crash
  between the send and that commit leaves it pending, so it is sent again with the
  same `notice_id`. Delivery is therefore at least once, and a receiver may see a
  notice twice.
- `(notice_id, channel)` is unique, so enqueuing a recomputed notice again is a no-op.
- Per channel and alert instance (fingerprint), rows go out in `created_at` order:
  `next_due` never returns a row while an older row of the same instance on the same
  channel is still pending or held, so a resolve cannot overtake its firing.
- Times are UTC epoch seconds (REAL).

Row statuses: `pending` becomes `delivered`, `dead` or `held`. A `held` row becomes
`pending` again when its channel's config changes (`prepare_channel`) or an operator
releases it (`release_held`). A delivered row whose channel skipped it (for example a
resolved notice on a channel with `send_resolved: false`) has `last_status` `skipped`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from storage.db import transaction

__all__ = [
    "DELIVERED_RETENTION",
    "MAX_NOTICE_AGE",
    "AttemptOutcome",
    "AttemptRecord",
    "ChannelHealthRecord",
    "ChannelState",
    "ChannelUpdate",
    "DeliveryRecord",
    "OutboxItem",
    "OutboxRow",
    "OutboxStatus",
    "apply_outbox_retention",
    "channel_health",
    "dead_letters",
    "deliveries_for_alert",
    "delivery_attempts",
    "enqueue",
    "next_due",
    "next_due_at",
    "prepare_channel",
    "record_attempt",
    "release_held",
]

OutboxStatus = Literal["pending", "delivered", "dead", "held"]
"""Status of an outbox row."""

ChannelState = Literal["ok", "degraded", "misconfigured", "failing"]
"""Health of a channel: `degraded` is rate limited (HTTP 429), `failing` has other
transient errors, `misconfigured` waits for a config change."""

MAX_NOTICE_AGE = 24 * 3600.0
"""Seconds after `created_at` when an undelivered notice moves to the dead-letter list."""

DELIVERED_RETENTION = 30 * 86400.0
"""Seconds delivered and dead rows, with their attempts, are kept after they were created."""

_ROW_COLUMNS = (
    "id, notice_id, channel, kind, alert_id, fingerprint, payload, created_at, "
    "status, attempts, next_attempt_at"
)

_DELIVERY_COLUMNS = (
    "notice_id, channel, kind, alert_id, fingerprint, status, attempts, created_at, "
    "next_attempt_at, last_attempt_at, delivered_at, last_status, last_error_class, "
    "last_error, http_status, response_body"
)

_HEALTH_COLUMNS = (
    "channel, state, last_success_at, last_error_at, last_error_class, last_error, "
    "http_status, response_body, next_retry_at, consecutive_failures, failing_since"
)

# A row is at the head of its alert's queue when no older row of the same
# fingerprint on the same channel is still pending or held.
_AT_HEAD = """
       NOT EXISTS (
           SELECT 1 FROM outbox AS earlier
            WHERE earlier.channel = o.channel
              AND earlier.fingerprint = o.fingerprint
              AND earlier.status IN ('pending', 'held')
              AND (earlier.created_at < o.created_at
                   OR (earlier.created_at = o.created_at AND earlier.id < o.id)))
"""

_NEXT_DUE = f"""
    SELECT {_ROW_COLUMNS} FROM outbox AS o
     WHERE o.channel = ?1 AND o.status = 'pending' AND o.next_attempt_at <= ?2 AND {_AT_HEAD}
     ORDER BY o.created_at, o.id
     LIMIT 1
"""

_NEXT_DUE_AT = f"""
    SELECT min(o.next_attempt_at) FROM outbox AS o
     WHERE o.channel = ?1 AND o.status = 'pending' AND {_AT_HEAD}
"""

_QUEUE_COUNTS = """
    SELECT channel,
           sum(status IN ('pending', 'held')),
           sum(status = 'held'),
           sum(status = 'dead'),
           min(CASE WHEN status = 'pending' THEN next_attempt_at END)
      FROM outbox
     WHERE status != 'delivered'
     GROUP BY channel
"""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notice to queue for one channel."""

    notice_id: str
    """Idempotency key of the delivery (`webhook-id`, email Message-ID), the same on every retry."""
    channel: str
    """Channel name from the config."""
    kind: str
    """Notice kind: firing, resolved, repeat, acknowledge or test."""
    alert_id: str | None
    """Public alert id (`alert_<n>`); None for notices without a stored alert."""
    fingerprint: str
    """Alert instance identity; delivery order is kept per fingerprint and channel."""
    payload: str
    """JSON of `atlas_tui.alerts.channels.Notice`."""
    created_at: float
    """When the engine created the notice; the 24 h dead-letter limit counts from here."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A queued notice as the sender reads it."""

    id: int
    notice_id: str
    channel: str
    kind: str
    alert_id: str | None
    fingerprint: str
    payload: str
    created_at: float
    status: OutboxStatus
    attempts: int
    """Sends made so far; skipped and expired outcomes do not count."""
    next_attempt_at: float


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one attempt did to a row; the sender decides it, `record_attempt` stores it."""

    row_status: OutboxStatus
    """The row's status after the attempt."""
    attempt_status: str
    """`delivered`, `retry`, `misconfigured` or `failed` from the channel, or `skipped`,
    `expired` or `invalid` decided by the sender without sending."""
    message: str
    """One line naming the channel and receiver (host:port only), never a secret."""
    sent: bool = True
    """False when nothing was sent (skipped, expired, invalid), so `attempts` stays."""
    next_attempt_at: float | None = None
    """When a `pending` row is due again."""
    error_class: str | None = None
    http_status: int | None = None
    response_body: str = ""
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ChannelUpdate:
    """The change one attempt makes to its channel's health row."""

    state: ChannelState
    """The channel's state after the attempt."""
    success: bool
    """True resets the failure count; False counts a failure and starts `failing_since`."""
    next_retry_at: float | None = None
    """Until when the whole channel waits (Retry-After or backoff); None for no wait."""


@dataclass(frozen=True, slots=True)
class ChannelHealthRecord:
    """One channel's health and queue, as the console, CLI and API show it."""

    channel: str
    state: ChannelState
    last_success_at: float | None
    last_error_at: float | None
    last_error_class: str | None
    last_error: str | None
    """The latest failure's message; kept after a recovery so the console can show it."""
    http_status: int | None
    """HTTP status of the latest failure, when it had one."""
    response_body: str | None
    """The receiver's response to the latest failure (shown for `misconfigured`)."""
    next_retry_at: float | None
    """When the next pending notice will be attempted (at least `now`); None when none is pending."""
    consecutive_failures: int
    failing_since: float | None
    """Start of the current run of failures; None while the channel works."""
    queue_depth: int
    """Pending and held notices."""
    held: int
    """Notices held until the channel's config changes."""
    dead_letters: int
    """Notices moved to the dead-letter list."""


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One notice on one channel with the outcome of its latest attempt."""

    notice_id: str
    channel: str
    kind: str
    alert_id: str | None
    fingerprint: str
    status: OutboxStatus
    attempts: int
    created_at: float
    next_attempt_at: float
    last_attempt_at: float | None
    delivered_at: float | None
    last_status: str | None
    """Status of the latest attempt (see `AttemptOutcome.attempt_status`); None before the first."""
    last_error_class: str | None
    last_error: str | None
    http_status: int | None
    response_body: str | None

    @property
    def skipped(self) -> bool:
        """True when the channel does not take this kind of notice, so nothing was sent."""
        return self.last_status == "skipped"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One stored attempt of one notice."""

    at: float
    status: str
    """`delivered`, `retry`, `misconfigured`, `failed`, `skipped`, `expired` or `invalid`."""
    error_class: str | None
    message: str
    http_status: int | None
    latency_ms: float | None


def enqueue(conn: sqlite3.Connection, items: Iterable[OutboxItem]) -> int:
    """Queue notices; a `(notice_id, channel)` already in the outbox is left as it is.

    **Writes** inside the caller's transaction: it opens no transaction of its own,
    only a savepoint, so the rows commit or roll back with the caller's state change.
    Called outside a transaction, it takes one BEGIN IMMEDIATE transaction.

    Returns:
        The number of rows inserted.
    """
    inserted = 0
    with transaction(conn):
        for item in items:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO outbox (notice_id, channel, kind, alert_id, fingerprint, "
                "payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (item.notice_id, item.channel, item.kind, item.alert_id, item.fingerprint,
                 item.payload, item.created_at, item.created_at),
            )
            inserted += cursor.rowcount
    return inserted


def next_due(conn: sqlite3.Connection, channel: str, now: float) -> OutboxRow | None:
    """Return the oldest pending row of `channel` due at `now` whose alert has no older row waiting.

    **Read-only**, one autocommit statement.
    """
    row = conn.execute(_NEXT_DUE, (channel, now)).fetchone()
    return OutboxRow(*row) if row else None


def next_due_at(conn: sqlite3.Connection, channel: str) -> float | None:
    """Return when `next_due` will next return a row of `channel`; None when none is pending.

    Rows waiting behind an older row of the same alert are not counted, because
    they become due only after that row is done. **Read-only**, one autocommit statement.
    """
    row = conn.execute(_NEXT_DUE_AT, (channel,)).fetchone()
    return None if row[0] is None else float(row[0])


def record_attempt(
    conn: sqlite3.Connection,
    row_id: int,
    channel: str,
    outcome: AttemptOutcome,
    update: ChannelUpdate | None,
    *,
    now: float,
) -> None:
    """Store one attempt: its `deliveries` row, the outbox row's new status and the channel's health.

    **Writes**, one BEGIN IMMEDIATE transaction, so a crash leaves either all three or none.
    `update` None leaves the channel's health row unchanged.
    """
    with transaction(conn):
        conn.execute(
            "INSERT INTO deliveries (outbox_id, at, status, error_class, message, http_status, latency_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row_id, now, outcome.attempt_status, outcome.error_class, outcome.message, outcome.http_status,
             outcome.latency_ms),
        )
        _update_row(conn, row_id, outcome, now)
        if update is not None:
            _update_health(conn, channel, outcome, update, now)


def prepare_channel(conn: sqlite3.Connection, channel: str, config_hash: str, now: float) -> int:
    """Record the channel's config hash at start; when it changed, release held rows.

    A changed config also clears the `misconfigured` state, so the sender tries
    the channel again. **Writes**, one BEGIN IMMEDIATE transaction.

    Returns:
        The number of held rows made pending again.
    """
    with transaction(conn):
        stored = conn.execute("SELECT config_hash FROM channel_health WHERE channel = ?", (channel,)).fetchone()
        if stored is None:
            conn.execute(
                "INSERT INTO channel_health (channel, state, config_hash, updated_at) VALUES (?, 'ok', ?, ?)",
                (channel, config_hash, now),
            )
            return _release(conn, channel, now)
        if stored[0] == config_hash:
            return 0
        conn.execute("UPDATE channel_health SET config_hash = ?, updated_at = ? WHERE channel = ?",
                     (config_hash, now, channel))
        return _release(conn, channel, now)


def release_held(conn: sqlite3.Connection, channel: str, now: float) -> int:
    """Make the channel's held rows pending and clear its `misconfigured` state.

    For an operator who fixed a secret outside the config file (the variable or file
    it names), which `prepare_channel` cannot see. **Writes**, one BEGIN IMMEDIATE
    transaction.

    Returns:
        The number of rows released.
    """
    with transaction(conn):
        return _release(conn, channel, now)


def channel_health(
    conn: sqlite3.Connection, now: float, channel: str | None = None
) -> list[ChannelHealthRecord]:
    """Return the health and queue of every channel with a health row or queued rows, by name.

    A channel with queued rows but no attempt yet is reported `ok`. `channel`
    limits the result to one channel. **Read-only**, one deferred transaction.
    """
    with transaction(conn, immediate=False):
        cursor = conn.execute(f"SELECT {_HEALTH_COLUMNS} FROM channel_health")
        cursor.row_factory = sqlite3.Row
        health: dict[str, sqlite3.Row] = {row["channel"]: row for row in cursor.fetchall()}
        counts = {row[0]: tuple(row[1:]) for row in conn.execute(_QUEUE_COUNTS).fetchall()}
    names = sorted(set(health) | set(counts))
    if channel is not None:
        names = [name for name in names if name == channel]
    return [_health_record(name, health.get(name), counts.get(name), now) for name in names]


def deliveries_for_alert(conn: sqlite3.Connection, alert_id: str) -> list[DeliveryRecord]:
    """Return every notice of one alert per channel, oldest first.

    **Read-only**, one autocommit statement.
    """
    rows = conn.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM outbox WHERE alert_id = ? ORDER BY created_at, channel, id",
        (alert_id,),
    ).fetchall()
    return [DeliveryRecord(*row) for row in rows]


def delivery_attempts(conn: sqlite3.Connection, notice_id: str, channel: str) -> list[AttemptRecord]:
    """Return the attempts of one notice on one channel, oldest first.

    **Read-only**, one autocommit statement.
    """
    rows = conn.execute(
        "SELECT d.at, d.status, d.error_class, d.message, d.http_status, d.latency_ms "
        "FROM deliveries AS d JOIN outbox AS o ON o.id = d.outbox_id "
        "WHERE o.notice_id = ? AND o.channel = ? ORDER BY d.at, d.id",
        (notice_id, channel),
    ).fetchall()
    return [AttemptRecord(*row) for row in rows]


def dead_letters(conn: sqlite3.Connection, limit: int = 500) -> list[DeliveryRecord]:
    """Return the dead-letter list, newest notice first, at most `limit` rows.

    **Read-only**, one autocommit statement.
    """
    rows = conn.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY created_at DESC, id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [DeliveryRecord(*row) for row in rows]


def apply_outbox_retention(
    conn: sqlite3.Connection,
    now: float,
    *,
    keep: float = DELIVERED_RETENTION,
    max_age: float = MAX_NOTICE_AGE,
    batch_size: int = 500,
) -> int:
    """Dead-letter notices older than `max_age`, then delete finished rows older than `keep`.

    Expiry covers every channel, including channels no longer in the config, whose
    rows no sender takes. Finished means delivered or dead; their attempts go with
    them. **Writes**, in batches of at most `batch_size` rows, each in its own BEGIN
    IMMEDIATE transaction, so the sender waits at most one short batch.

    Returns:
        The number of rows expired plus the number deleted.
    """
    changed = 0
    while True:
        with transaction(conn):
            count = _expire_batch(conn, now, max_age, batch_size) + _delete_batch(conn, now - keep, batch_size)
        changed += count
        if count == 0:
            return changed


def _update_row(conn: sqlite3.Connection, row_id: int, outcome: AttemptOutcome, now: float) -> None:
    delivered_at = now if outcome.row_status == "delivered" else None
    conn.execute(
        "UPDATE outbox SET status = ?, attempts = attempts + ?, "
        "next_attempt_at = coalesce(?, next_attempt_at), last_attempt_at = ?, delivered_at = ?, "
        "last_status = ?, last_error_class = ?, last_error = ?, http_status = ?, response_body = ? "
        "WHERE id = ?",
        (outcome.row_status, int(outcome.sent), outcome.next_attempt_at, now, delivered_at,
         outcome.attempt_status, outcome.error_class, outcome.message if outcome.error_class else None,
         outcome.http_status, outcome.response_body, row_id),
    )


def _update_health(
    conn: sqlite3.Connection, channel: str, outcome: AttemptOutcome, update: ChannelUpdate, now: float
) -> None:
    if update.success:
        conn.execute(
            "INSERT INTO channel_health (channel, state, last_success_at, consecutive_failures, updated_at) "
            "VALUES (?1, ?2, ?3, 0, ?3) ON CONFLICT (channel) DO UPDATE SET state = ?2, "
            "last_success_at = ?3, consecutive_failures = 0, failing_since = NULL, next_retry_at = NULL, "
            "updated_at = ?3",
            (channel, update.state, now),
        )
        return
    conn.execute(
        "INSERT INTO channel_health (channel, state, last_error_at, last_error_class, last_error, "
        "http_status, response_body, next_retry_at, consecutive_failures, failing_since, updated_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?3, ?3) ON CONFLICT (channel) DO UPDATE SET "
        "state = ?2, last_error_at = ?3, last_error_class = ?4, last_error = ?5, http_status = ?6, "
        "response_body = ?7, next_retry_at = ?8, consecutive_failures = consecutive_failures + 1, "
        "failing_since = coalesce(failing_since, ?3), updated_at = ?3",
        (channel, update.state, now, outcome.error_class, outcome.message, outcome.http_status,
         outcome.response_body, update.next_retry_at),
    )


def _release(conn: sqlite3.Connection, channel: str, now: float) -> int:
    released = conn.execute(
        "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE channel = ? AND status = 'held'",
        (now, channel),
    ).rowcount
    conn.execute(
        "UPDATE channel_health SET state = 'ok', consecutive_failures = 0, failing_since = NULL, "
        "next_retry_at = NULL, updated_at = ? WHERE channel = ? AND state = 'misconfigured'",
        (now, channel),
    )
    return released


def _expire_batch(conn: sqlite3.Connection, now: float, max_age: float, batch_size: int) -> int:
    ids = [row[0] for row in conn.execute(
        "SELECT id FROM outbox WHERE status IN ('pending', 'held') AND created_at <= ? LIMIT ?",
        (now - max_age, batch_size),
    )]
    if not ids:
        return 0
    message = f"not delivered within {max_age / 3600:g} h of its creation; moved to the dead-letter list"
    conn.executemany(
        "INSERT INTO deliveries (outbox_id, at, status, error_class, message) VALUES (?, ?, 'expired', 'expired', ?)",
        [(row_id, now, message) for row_id in ids],
    )
    conn.executemany(
        "UPDATE outbox SET status = 'dead', last_status = 'expired', last_error_class = 'expired', "
        "last_error = ? WHERE id = ?",
        [(message, row_id) for row_id in ids],
    )
    return len(ids)


def _delete_batch(conn: sqlite3.Connection, before: float, batch_size: int) -> int:
    # Attempts go with their row through ON DELETE CASCADE.
    return conn.execute(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
        "WHERE status IN ('delivered', 'dead') AND created_at < ? LIMIT ?)",
        (before, batch_size),
    ).rowcount


def _health_record(
    name: str, health: sqlite3.Row | None, counts: tuple[int, int, int, float | None] | None, now: float
) -> ChannelHealthRecord:
    queue_depth, held, dead, earliest_due = counts if counts else (0, 0, 0, None)
    pause = health["next_retry_at"] if health else None
    next_retry_at = None
    if earliest_due is not None:
        next_retry_at = max(earliest_due, pause or earliest_due, now)
    return ChannelHealthRecord(
        channel=name,
        state=health["state"] if health else "ok",
        last_success_at=health["last_success_at"] if health else None,
        last_error_at=health["last_error_at"] if health else None,
        last_error_class=health["last_error_class"] if health else None,
        last_error=health["last_error"] if health else None,
        http_status=health["http_status"] if health else None,
        response_body=health["response_body"] if health else None,
        next_retry_at=next_retry_at,
        consecutive_failures=health["consecutive_failures"] if health else 0,
        failing_since=health["failing_since"] if health else None,
        queue_depth=int(queue_depth or 0),
        held=int(held or 0),
        dead_letters=int(dead or 0),
    )
