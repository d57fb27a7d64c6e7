"""The rollup-based summary equals an event scan on simulated traffic, after late events, resends and rebuilds."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from atlas_tui.analytics.reports import build_summary
from atlas_tui.analytics.rollups import rebuild, refresh
from atlas_tui.analytics.simulator import SimulatorConfig, generate
from atlas_tui.cli import main
from storage.analytics_days import backfill_day_rollups
from storage.analytics_packed import pack, unpack
from storage.analytics_session_rollups import DURATION_BOUNDS, duration_bucket
from storage.analytics_windows import BLOCK, DAY, FULL_DAY_MASK, HOUR, activity_pieces, day_masks, split_hours
from storage.db import open_store, transaction
from storage.events import EventRow, count_events, store_events
from tests.analytics.report_events import event
from tests.analytics.summary_reference import load_events, reference_summary

BLOCK_START = 20608 * DAY
"""A 32-day activity block boundary; the traffic runs from 10 days before it to 8 days after."""
END = BLOCK_START + 8 * DAY + 5 * HOUR + 1234.5
"""End of the simulated traffic; deliberately not on an hour."""
MIDNIGHT = END // DAY * DAY
WALLET, PAY = "atlas-wallet", "atlas-pay"
_BASE_FIELDS = frozenset(
    ("event_id", "type", "client_ts", "session_id", "device_id", "user_id", "app_id", "app_version", "platform",
     "privacy_level", "properties")
)  # fmt: skip

WINDOWS: list[dict[str, Any]] = [
    {"start": END - 19 * DAY, "end": END + HOUR},
    {"start": END - 17.5 * DAY, "end": END - 0.5 * DAY, "app": WALLET, "platform": "android", "timezone": "Asia/Kolkata"},
    {"start": BLOCK_START - 9 * DAY, "end": BLOCK_START + 8 * DAY},
    {"start": END - 2.6 * DAY + 0.5, "end": END - 0.3 * DAY, "app": WALLET, "version": "2.3.0"},
    {"start": END - 3.1 * DAY + 17.25, "end": END - 1.2 * DAY, "platform": "ios", "timezone": "Asia/Kolkata"},
    {"start": END - 4 * DAY, "end": END, "app": PAY, "timezone": "Europe/Berlin"},
    {"start": END - 12 * DAY, "end": END, "timezone": "America/St_Johns"},
    {"start": MIDNIGHT - 2 * DAY, "end": MIDNIGHT},
    {"start": MIDNIGHT - DAY + 10 * HOUR + 60, "end": MIDNIGHT - DAY + 10 * HOUR + 3000, "app": WALLET},
    {"start": MIDNIGHT - DAY + 10 * HOUR + 60, "end": MIDNIGHT - DAY + 12 * HOUR, "app": WALLET},
]


def rows_of(app_id: str, devices: int, seed: int, end: float = END) -> list[EventRow]:
    """Simulate `devices` devices of `app_id` over the 6 days before `end`; every seventh sends at level `minimal`.

    Device pseudonyms depend on the device number only, so runs and apps share devices.
    """
    plan = generate(
        SimulatorConfig(devices=devices, days=6.0, end=end, seed=seed, app_id=app_id, skewed_device_share=0.0)
    )
    rows = []
    for item in plan.events.values():
        number = int(item["device_id"].split("-")[1])
        level = "minimal" if number % 7 == 6 else item["privacy_level"]
        attrs = {key: value for key, value in item.items() if key not in _BASE_FIELDS} if level != "minimal" else {}
        ts = datetime.fromisoformat(item["client_ts"]).timestamp()
        rows.append(
            EventRow(
                app_id=app_id, event_id=item["event_id"], type=item["type"], schema_version=1, schema_known=True,
                session_id=item["session_id"],
                device_hash=hashlib.sha256(f"device-{number}".encode()).hexdigest() if level != "minimal" else None,
                user_hash=None, app_version=item["app_version"], platform=item["platform"], privacy_level=level,
                client_ts=ts, sent_at=ts, received_at=ts, skew=0.0, event_ts=ts, future_clamped=False, ip_prefix=None,
                attrs=json.dumps(attrs, sort_keys=True),
                properties=json.dumps(item["properties"] if level == "full" else {}, sort_keys=True), extra=None,
                content_hash=item["event_id"],
            )
        )  # fmt: skip
    return rows


def open_sessions() -> list[EventRow]:
    """Sessions without an end: one still open at `END`, one idle long enough to be abnormal at `END`."""
    return [
        event("app_launch", END - 600, session="open-1", device="late-user", version="2.3.0", platform="ios"),
        event("screen_view", END - 500, session="open-1", device="late-user", version="2.3.0", platform="ios",
              screen="send"),
        event("app_launch", END - 1.5 * DAY, session="idle-1", device="idle-user", version="2.2.0"),
        event("screen_view", END - 1.5 * DAY + 30, session="idle-1", device="idle-user", version="2.2.0",
              screen="home"),
    ]  # fmt: skip


def dataset() -> tuple[list[EventRow], list[EventRow]]:
    """Return the rows stored first and the rows that arrive late, after a refresh."""
    rows = [row for offset in range(3) for row in rows_of(WALLET, 12, seed=11 + offset, end=END - 6 * offset * DAY)]
    rows += rows_of(PAY, 10, seed=20) + open_sessions()
    late_devices = {row.device_hash for row in rows if row.device_hash and row.device_hash[-1] in "05a"}
    first = [row for row in rows if row.device_hash not in late_devices]
    late = [row for row in rows if row.device_hash in late_devices]
    return first, late


def store_rows(conn: sqlite3.Connection, rows: list[EventRow]) -> None:
    """Store rows in batches of 300, the way the ingest writer calls `store_events`."""
    for offset in range(0, len(rows), 300):
        store_events(conn, rows[offset : offset + 300], {}, END)


def assert_same_summary(conn: sqlite3.Connection, window: dict[str, Any], now: float = END) -> None:
    """Check `build_summary` against the event scan for one window."""
    summary = build_summary(conn, now=now, **window).model_dump(exclude={"ingest"})
    expected = reference_summary(load_events(conn), now=now, **window)
    for section, value in expected.items():
        assert summary[section] == value, f"{section} differs for {window}"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A store holding the whole data set, late events and resends included, refreshed."""
    connection = open_store(tmp_path / "data")
    first, late = dataset()
    store_rows(connection, first)
    refresh(connection)
    mixed = late + random.Random(5).sample(first, 200)
    random.Random(6).shuffle(mixed)
    store_rows(connection, mixed)
    refresh(connection)
    yield connection
    connection.close()


@pytest.mark.parametrize("window", WINDOWS, ids=range(len(WINDOWS)))
def test_summary_equals_event_scan(conn: sqlite3.Connection, window: dict[str, Any]) -> None:
    """Every section but ingest matches the event scan, for several windows, zones and filters."""
    assert_same_summary(conn, window)


def test_window_without_whole_hour(conn: sqlite3.Connection) -> None:
    """A window of one second, long before the data, reads no rollup row and matches the event scan."""
    assert_same_summary(conn, {"start": 0.0, "end": 1.0})


def test_resends_store_nothing_twice(conn: sqlite3.Connection) -> None:
    """The data set's resent rows were stored once, so the event scan counts each event once."""
    first, late = dataset()
    assert count_events(conn) == len(first) + len(late)


def test_open_and_timed_out_sessions(conn: sqlite3.Connection) -> None:
    """Sessions without an end count as open, then as abnormal once the reader's clock passes the timeout."""
    window = {"start": END - 19 * DAY, "end": END}
    early = build_summary(conn, now=END, **window).sessions
    later = build_summary(conn, now=END + DAY, **window).sessions
    assert later.abnormal == early.abnormal + 1
    assert_same_summary(conn, window, now=END)
    assert_same_summary(conn, window, now=END + DAY)


def test_late_events_change_past_days(tmp_path: Path) -> None:
    """Events for days already rolled up are counted after the next refresh, in their own day and hour."""
    connection = open_store(tmp_path / "data")
    first, late = dataset()
    store_rows(connection, first)
    refresh(connection)
    window = WINDOWS[0]
    before = build_summary(connection, now=END, **window)
    assert_same_summary(connection, window)
    store_rows(connection, late)
    refresh(connection)
    after = build_summary(connection, now=END, **window)
    assert after.sessions.count > before.sessions.count
    assert after.usage.mau > before.usage.mau
    assert_same_summary(connection, window)
    connection.close()


def test_rebuild_from_events(conn: sqlite3.Connection) -> None:
    """`rebuild` rederives sessions and every rollup from the events and gives the same summaries."""
    before = [build_summary(conn, now=END, **window) for window in WINDOWS]
    result = rebuild(conn)
    assert result.events == count_events(conn)
    assert result.days > 0
    assert [build_summary(conn, now=END, **window) for window in WINDOWS] == before
    for window in WINDOWS[:3]:
        assert_same_summary(conn, window)


def test_cli_rebuild(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`atlas analytics rebuild` recomputes the rollups of a store and prints what it did."""
    data_dir = tmp_path / "data"
    connection = open_store(data_dir)
    first, _late = dataset()
    store_rows(connection, first[:3000])
    refresh(connection)
    before = build_summary(connection, now=END, **WINDOWS[0])
    connection.close()
    assert main(["analytics", "rebuild", "--data-dir", str(data_dir)]) == 0
    assert "rebuilt from 3000 events" in capsys.readouterr().out
    connection = open_store(data_dir)
    assert build_summary(connection, now=END, **WINDOWS[0]) == before
    connection.close()
    assert main(["analytics", "rebuild", "--data-dir", str(tmp_path / "none")]) == 1
    assert "no store at" in capsys.readouterr().err


def test_backfill_from_hour_rollups(conn: sqlite3.Connection) -> None:
    """The migration's backfill recreates the day rollups from the hour rollups and sessions alone."""
    before = [build_summary(conn, now=END, **window) for window in WINDOWS]
    with transaction(conn):
        for table in ("analytics_daily", "analytics_hist_packed", "analytics_device_activity",
                      "analytics_session_activity", "analytics_session_hourly", "analytics_device_ids"):  # fmt: skip
            conn.execute(f"DELETE FROM {table}")
        assert backfill_day_rollups(conn) > 0
    assert [build_summary(conn, now=END, **window) for window in WINDOWS] == before


def test_split_hours_and_masks() -> None:
    """A window is cut into whole UTC days and the hours around them; masks mark the hours of each day."""
    start, end = MIDNIGHT - 3 * HOUR, MIDNIGHT + DAY + 2 * HOUR
    parts = split_hours(int(start), int(end))
    assert parts.days == (MIDNIGHT, MIDNIGHT + DAY)
    assert parts.hours == ((start, MIDNIGHT), (MIDNIGHT + DAY, end))
    masks = day_masks(int(start), int(end))
    assert [mask for _, mask in masks] == [0b111 << 21, FULL_DAY_MASK, 0b11]
    assert split_hours(int(MIDNIGHT + HOUR), int(MIDNIGHT + 5 * HOUR)) == (None, ((MIDNIGHT + HOUR, MIDNIGHT + 5 * HOUR),))
    assert day_masks(int(MIDNIGHT + HOUR), int(MIDNIGHT + 3 * HOUR)) == [(MIDNIGHT, 0b110)]


def test_long_windows_read_block_rows(conn: sqlite3.Connection) -> None:
    """Windows with 8 or more whole days in a 32-day block read its block row, the other days their day rows."""
    pieces = activity_pieces(day_masks(int(BLOCK_START - 9 * DAY - HOUR), int(BLOCK_START + 3 * DAY)))
    assert [(piece.span, piece.start) for piece in pieces if piece.span == BLOCK] == [(BLOCK, BLOCK_START - BLOCK)]
    assert sum(1 for piece in pieces if piece.span == DAY) == 1 + 3
    stored = conn.execute("SELECT count(*) FROM analytics_device_activity WHERE span = ?", (BLOCK,)).fetchone()[0]
    assert stored > 0


def test_packed_round_trip() -> None:
    """A packed histogram returns its values in order with their counts, large values clamped to 64 bits."""
    counts = {900: 2, 12: 1, 0: 5, 2**70: 1}
    assert list(unpack(pack(counts))) == [(0, 5), (12, 1), (900, 2), (2**63 - 1, 1)]


def test_duration_buckets_cover_their_range() -> None:
    """Each duration falls in the bucket whose bounds contain it, so a range query finds exactly that bucket."""
    for seconds in (-1.0, 0.0, 0.0004, 0.001, 1.5, 59.999, 60.0, 125.5, 86400.0, 1e12):
        bucket = duration_bucket(seconds)
        assert DURATION_BOUNDS[bucket] <= seconds < DURATION_BOUNDS[bucket + 1]
