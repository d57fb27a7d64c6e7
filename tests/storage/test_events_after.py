"""`storage.alerts.events_after`: the reader behind the live feed's alert topic."""

from __future__ import annotations

import sqlite3

from storage.alerts import EventRow, events_after, insert_events
from tests.storage.conftest import T0


def _insert(conn: sqlite3.Connection, count: int) -> None:
    rows = [
        EventRow(alert_id=1, fingerprint="fp", rule_id="r", incident_id=None, at=T0 + i, kind="firing",
                 from_state="pending", to_state="firing", value=float(i), actor="engine")
        for i in range(count)
    ]
    insert_events(conn, rows)


def test_events_after_none_starts(store: sqlite3.Connection) -> None:
    """Without a starting id no rows come back, only the highest id."""
    _insert(store, 3)

    events, top = events_after(store, None)

    assert events == []
    assert top == 3


def test_events_after_id(store: sqlite3.Connection) -> None:
    """Rows after the given id come back oldest first, with the highest id."""
    _insert(store, 5)

    events, top = events_after(store, 2)

    assert [e.event_id for e in events] == [3, 4, 5]
    assert events[0].alert_id == "alert_1"
    assert top == 5


def test_events_after_limit(store: sqlite3.Connection) -> None:
    """A limit cuts the list, and the returned id is the last row's, so the rest comes next time."""
    _insert(store, 5)

    events, top = events_after(store, 0, limit=2)
    rest, last = events_after(store, top)

    assert [e.event_id for e in events] == [1, 2]
    assert top == 2
    assert [e.event_id for e in rest] == [3, 4, 5]
    assert last == 5


def test_events_after_empty(store: sqlite3.Connection) -> None:
    """An empty table gives no rows and id 0, and the given id is kept."""
    assert events_after(store, None) == ([], 0)
    assert events_after(store, 7) == ([], 7)
