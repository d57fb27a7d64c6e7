"""Sessions derived from stored events: how each one ends, timeouts, duplicates and reordering."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from atlas_tui.analytics.rollups import refresh
from atlas_tui.analytics.sessions import SESSION_TIMEOUT
from storage.db import open_store
from storage.sessions import session_rows
from tests.analytics.report_events import T0, event, session, store


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    """A migrated store in a temporary directory."""
    connection = open_store(tmp_path / "data")
    yield connection
    connection.close()


def statuses(conn: sqlite3.Connection, now: float) -> dict[str, str]:
    """Return the status of every session by session id, after a refresh."""
    refresh(conn)
    rows = conn.execute("SELECT session_id FROM analytics_sessions ORDER BY started_at").fetchall()
    found = session_rows(conn, 0.0, 1e12, now)
    ids = [row[0] for row in rows]
    by_start = sorted(found, key=lambda row: row[4])
    return {session_id: row[6] for session_id, row in zip(ids, by_start)}


def test_session_end_exits(conn: sqlite3.Connection) -> None:
    """A session closed by session_end is exited."""
    store(conn, session("d1", "s1", T0))
    assert statuses(conn, T0 + 10 * SESSION_TIMEOUT) == {"s1": "exited"}


def test_new_launch_closes_abnormal(conn: sqlite3.Connection) -> None:
    """A new launch on the same device closes an open session as abnormal."""
    store(conn, session("d1", "s1", T0, end=False) + session("d1", "s2", T0 + 120))
    assert statuses(conn, T0 + 200)["s1"] == "abnormal"


def test_new_launch_closes_crashed(conn: sqlite3.Connection) -> None:
    """A new launch closes an open session with a fatal error as crashed."""
    store(conn, session("d1", "s1", T0, end=False, fatal=True) + session("d1", "s2", T0 + 120))
    assert statuses(conn, T0 + 200)["s1"] == "crashed"


def test_unhandled_error_is_errored(conn: sqlite3.Connection) -> None:
    """An unhandled non-fatal error makes an exited session errored, not crashed."""
    store(conn, session("d1", "s1", T0, unhandled=True))
    assert statuses(conn, T0 + 200) == {"s1": "errored"}


def test_crashed_wins_over_errored(conn: sqlite3.Connection) -> None:
    """With both an unhandled and a fatal error the session is crashed."""
    store(conn, session("d1", "s1", T0, end=False, unhandled=True, fatal=True))
    assert statuses(conn, T0 + 200) == {"s1": "crashed"}


def test_timeout_open_then_abnormal(conn: sqlite3.Connection) -> None:
    """An open session is open before the idle timeout and abnormal after it."""
    store(conn, session("d1", "s1", T0, end=False))
    assert statuses(conn, T0 + SESSION_TIMEOUT - 1) == {"s1": "open"}
    assert statuses(conn, T0 + SESSION_TIMEOUT) == {"s1": "abnormal"}


def test_late_session_end_closes_right_session(conn: sqlite3.Connection) -> None:
    """A session_end arriving after the next session started still exits its own session."""
    first = session("d1", "s1", T0, end=False)
    store(conn, first + session("d1", "s2", T0 + 120))
    assert statuses(conn, T0 + 200)["s1"] == "abnormal"
    store(conn, [event("session_end", T0 + 100, session="s1", device="d1", duration_s=100.0)])
    result = statuses(conn, T0 + 200)
    assert result["s1"] == "exited"
    assert result["s2"] == "exited"


def test_duplicates_and_order_keep_counts(tmp_path: Path) -> None:
    """Resending events and shuffling their arrival give the same sessions."""
    rows = []
    for index in range(30):
        rows += session(f"d{index % 7}", f"s{index}", T0 + index * 400, end=index % 3 != 0, fatal=index % 5 == 0)
    expected = _status_counts(tmp_path / "a", [rows])
    shuffled = rows[:]
    random.Random(4).shuffle(shuffled)
    halves = [shuffled[: len(shuffled) // 2], shuffled, shuffled[::2]]
    assert _status_counts(tmp_path / "b", halves) == expected


def _status_counts(path: Path, deliveries: list[list]) -> Counter[str]:
    conn = open_store(path)
    try:
        for batch in deliveries:
            store(conn, batch)
            refresh(conn)
        return Counter(row[6] for row in session_rows(conn, 0.0, 1e12, T0 + 86400))
    finally:
        conn.close()
