"""`storage.events`: one transaction per batch, and outcomes per row."""

from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from storage.db import DB_FILENAME, connect
from storage.events import EventRow, count_events, counter_key, read_counters, store_events

ROW = EventRow(
    app_id="app", event_id="e-1", type="screen_view", schema_version=1, schema_known=True, session_id="s",
    device_hash="d" * 64, user_hash=None, app_version="1.0", platform="ios", privacy_level="standard",
    client_ts=100.0, sent_at=100.0, received_at=100.0, skew=0.0, event_ts=100.0, future_clamped=False,
    ip_prefix=None, attrs="{}", properties="{}", extra=None, content_hash="h1",
)  # fmt: skip


def test_failed_row_rolls_back(data_dir: Path) -> None:
    """A row that violates the schema rolls back the whole batch, counters included."""
    broken = dataclasses.replace(ROW, event_id="e-2", type=None)  # type: ignore[arg-type]

    with closing(connect(data_dir / DB_FILENAME)) as conn:
        with pytest.raises(sqlite3.IntegrityError):
            store_events(conn, [ROW, broken], {counter_key("events_rejected", app="app", reason="x"): 1}, 100.0)
        stored = count_events(conn)
        counters = read_counters(conn)

    assert stored == 0
    assert counters == {}


def test_outcomes_per_row(data_dir: Path) -> None:
    """Rows are accepted, duplicate or conflict by their id and content hash."""
    conflicting = dataclasses.replace(ROW, content_hash="h2")
    fresh = dataclasses.replace(ROW, event_id="e-3")

    with closing(connect(data_dir / DB_FILENAME)) as conn:
        first = store_events(conn, [ROW], {}, 100.0)
        second = store_events(conn, [ROW, conflicting, fresh], {}, 101.0)
        quarantined = conn.execute("SELECT count(*) FROM analytics_quarantine").fetchone()[0]

    assert first == ["accepted"]
    assert second == ["duplicate", "conflict", "accepted"]
    assert quarantined == 1
