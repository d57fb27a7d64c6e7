"""Tests for `storage.outbox`: queueing, order per alert, attempts, channel health, retention."""

from __future__ import annotations

import sqlite3

import pytest

from storage.db import transaction
from storage.outbox import (
    MAX_NOTICE_AGE,
    AttemptOutcome,
    ChannelUpdate,
    OutboxItem,
    apply_outbox_retention,
    channel_health,
    dead_letters,
    deliveries_for_alert,
    delivery_attempts,
    enqueue,
    next_due,
    next_due_at,
    prepare_channel,
    record_attempt,
    release_held,
)
from tests.storage.conftest import T0

DELIVERED = AttemptOutcome("delivered", "delivered", "channel slack: delivered", http_status=200,
                           response_body="ok", latency_ms=12.0)


def _item(notice_id: str, *, channel: str = "slack", fingerprint: str = "fp01", created_at: float = T0,
          kind: str = "firing", alert_id: str | None = "alert_1") -> OutboxItem:
    return OutboxItem(notice_id=notice_id, channel=channel, kind=kind, alert_id=alert_id,
                      fingerprint=fingerprint, payload="{}", created_at=created_at)


def _retry(next_attempt_at: float, error_class: str = "http_server_error") -> AttemptOutcome:
    return AttemptOutcome("pending", "retry", "channel slack: receiver error", next_attempt_at=next_attempt_at,
                          error_class=error_class, http_status=503, response_body="down")


def _status(conn: sqlite3.Connection, notice_id: str, channel: str = "slack") -> str:
    return str(conn.execute("SELECT status FROM outbox WHERE notice_id = ? AND channel = ?",
                            (notice_id, channel)).fetchone()[0])


def test_enqueue_ignores_duplicates(store: sqlite3.Connection) -> None:
    """A notice queued twice for one channel is stored once; another channel gets its own row."""
    first = enqueue(store, [_item("n1"), _item("n1", channel="email")])
    again = enqueue(store, [_item("n1")])
    assert first == 2
    assert again == 0
    assert store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2


def test_enqueue_rolls_back_with_caller(store: sqlite3.Connection) -> None:
    """Rows queued inside a transaction that fails are not kept."""
    with pytest.raises(RuntimeError), transaction(store):
        enqueue(store, [_item("n1")])
        raise RuntimeError("state change failed")
    assert store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_next_due_oldest_first(store: sqlite3.Connection) -> None:
    """Due rows of different alerts come out oldest first; rows not yet due stay back."""
    enqueue(store, [_item("late", fingerprint="b", created_at=T0 + 5),
                    _item("early", fingerprint="a", created_at=T0 + 1),
                    _item("future", fingerprint="c", created_at=T0 + 100)])
    row = next_due(store, "slack", T0 + 10)
    assert row is not None
    assert row.notice_id == "early"
    assert row.status == "pending"


def test_resolve_waits_behind_firing(store: sqlite3.Connection) -> None:
    """A resolved notice is not due while the same alert's firing notice waits for a retry."""
    enqueue(store, [_item("firing", created_at=T0), _item("resolved", kind="resolved", created_at=T0 + 1)])
    row = next_due(store, "slack", T0 + 2)
    assert row is not None
    record_attempt(store, row.id, "slack", _retry(T0 + 60), ChannelUpdate("failing", success=False), now=T0 + 2)

    assert next_due(store, "slack", T0 + 30) is None
    assert next_due_at(store, "slack") == T0 + 60
    after = next_due(store, "slack", T0 + 60)
    assert after is not None
    assert after.notice_id == "firing"


def test_other_alert_not_blocked(store: sqlite3.Connection) -> None:
    """A waiting retry of one alert does not hold back another alert on the same channel."""
    enqueue(store, [_item("a1", fingerprint="a", created_at=T0), _item("b1", fingerprint="b", created_at=T0 + 1)])
    row = next_due(store, "slack", T0 + 2)
    assert row is not None
    record_attempt(store, row.id, "slack", _retry(T0 + 60), None, now=T0 + 2)
    other = next_due(store, "slack", T0 + 3)
    assert other is not None
    assert other.notice_id == "b1"


def test_record_delivered(store: sqlite3.Connection) -> None:
    """A delivery marks the row, stores one attempt and sets the channel ok with its success time."""
    enqueue(store, [_item("n1")])
    row = next_due(store, "slack", T0)
    assert row is not None
    record_attempt(store, row.id, "slack", DELIVERED, ChannelUpdate("ok", success=True), now=T0 + 1)

    [record] = deliveries_for_alert(store, "alert_1")
    assert record.status == "delivered"
    assert record.attempts == 1
    assert record.delivered_at == T0 + 1
    [attempt] = delivery_attempts(store, "n1", "slack")
    assert attempt.status == "delivered"
    assert attempt.latency_ms == 12.0
    [health] = channel_health(store, T0 + 1)
    assert health.state == "ok"
    assert health.last_success_at == T0 + 1
    assert health.queue_depth == 0


def test_failures_track_failing_since(store: sqlite3.Connection) -> None:
    """Consecutive failures count up from the first failure's time; a success resets them."""
    enqueue(store, [_item("n1")])
    row = next_due(store, "slack", T0)
    assert row is not None
    for offset in (1, 2):
        record_attempt(store, row.id, "slack", _retry(T0 + 100, "http_rate_limited"),
                       ChannelUpdate("degraded", success=False, next_retry_at=T0 + 100), now=T0 + offset)
    [failing] = channel_health(store, T0 + 3)
    record_attempt(store, row.id, "slack", DELIVERED, ChannelUpdate("ok", success=True), now=T0 + 100)
    [healthy] = channel_health(store, T0 + 100)

    assert failing.state == "degraded"
    assert failing.consecutive_failures == 2
    assert failing.failing_since == T0 + 1
    assert failing.last_error_class == "http_rate_limited"
    assert failing.next_retry_at == T0 + 100
    assert failing.queue_depth == 1
    assert healthy.failing_since is None
    assert healthy.consecutive_failures == 0
    assert healthy.last_error_class == "http_rate_limited"


def test_skipped_counts_no_attempt(store: sqlite3.Connection) -> None:
    """A skipped notice is finished without a send: zero attempts, status delivered, marked skipped."""
    enqueue(store, [_item("n1", kind="resolved")])
    row = next_due(store, "slack", T0)
    assert row is not None
    skipped = AttemptOutcome("delivered", "skipped", "channel slack takes no resolved notices", sent=False)
    record_attempt(store, row.id, "slack", skipped, None, now=T0)
    [record] = deliveries_for_alert(store, "alert_1")
    assert record.skipped
    assert record.attempts == 0
    assert channel_health(store, T0) == []


def test_config_change_releases_held(store: sqlite3.Connection) -> None:
    """Held rows stay held under the same config hash and are released when it changes."""
    enqueue(store, [_item("n1")])
    prepare_channel(store, "slack", "hash-a", T0)
    row = next_due(store, "slack", T0)
    assert row is not None
    held = AttemptOutcome("held", "misconfigured", "channel slack: HTTP 404", error_class="http_not_found",
                          http_status=404, response_body="no_service")
    record_attempt(store, row.id, "slack", held, ChannelUpdate("misconfigured", success=False), now=T0 + 1)

    unchanged = prepare_channel(store, "slack", "hash-a", T0 + 2)
    [before] = channel_health(store, T0 + 2)
    changed = prepare_channel(store, "slack", "hash-b", T0 + 3)
    [after] = channel_health(store, T0 + 3)

    assert unchanged == 0
    assert before.state == "misconfigured"
    assert before.response_body == "no_service"
    assert before.held == 1
    assert changed == 1
    assert after.state == "ok"
    assert _status(store, "n1") == "pending"


def test_release_held_by_operator(store: sqlite3.Connection) -> None:
    """`release_held` makes held rows due now and clears the misconfigured state."""
    enqueue(store, [_item("n1")])
    row = next_due(store, "slack", T0)
    assert row is not None
    held = AttemptOutcome("held", "misconfigured", "channel slack: HTTP 401", error_class="http_unauthorized")
    record_attempt(store, row.id, "slack", held, ChannelUpdate("misconfigured", success=False), now=T0 + 1)
    assert release_held(store, "slack", T0 + 5) == 1
    due = next_due(store, "slack", T0 + 5)
    assert due is not None
    assert channel_health(store, T0 + 5)[0].state == "ok"


def test_retention_expires_and_deletes(store: sqlite3.Connection) -> None:
    """Old pending and held rows become dead letters; finished rows past retention are deleted."""
    now = T0 + 40 * 86400
    enqueue(store, [
        _item("stale", fingerprint="a", created_at=now - MAX_NOTICE_AGE - 1),
        _item("fresh", fingerprint="b", created_at=now - 60),
        _item("old-done", fingerprint="c", created_at=now - 31 * 86400),
    ])
    old = store.execute("SELECT id FROM outbox WHERE notice_id = 'old-done'").fetchone()[0]
    record_attempt(store, old, "slack", DELIVERED, None, now=now - 31 * 86400)

    changed = apply_outbox_retention(store, now, batch_size=1)

    assert changed == 2
    assert _status(store, "stale") == "dead"
    assert _status(store, "fresh") == "pending"
    assert store.execute("SELECT count(*) FROM outbox WHERE notice_id = 'old-done'").fetchone()[0] == 0
    assert store.execute("SELECT count(*) FROM deliveries WHERE outbox_id = ?", (old,)).fetchone()[0] == 0
    [letter] = dead_letters(store)
    assert letter.notice_id == "stale"
    assert letter.last_status == "expired"


def test_health_lists_queue_only_channel(store: sqlite3.Connection) -> None:
    """A channel with queued rows but no attempt yet is listed as ok with its queue depth."""
    enqueue(store, [_item("n1", channel="email"), _item("n2", channel="email", fingerprint="b")])
    [health] = channel_health(store, T0 - 10)
    assert health.channel == "email"
    assert health.state == "ok"
    assert health.queue_depth == 2
    assert health.next_retry_at == T0
