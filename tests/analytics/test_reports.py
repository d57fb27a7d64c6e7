"""The analytics summary on small fixtures whose numbers are computed by hand."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.analytics.reports import build_summary, percentile
from atlas_tui.analytics.rollups import normalise_route, refresh
from storage.db import open_store
from tests.analytics.report_events import T0, event, session, store

DAY = 86400.0


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A migrated store in a temporary directory."""
    connection = open_store(tmp_path / "data")
    yield connection
    connection.close()


def summarise(conn: sqlite3.Connection, **kwargs: object):
    """Refresh the rollups and build the summary of the test day."""
    refresh(conn)
    options = {"start": T0, "end": T0 + DAY, "now": T0 + DAY, **kwargs}
    return build_summary(conn, **options)  # type: ignore[arg-type]


def crash_fixture() -> list:
    """1000 sessions from 400 devices; 7 crashed sessions on 5 devices; 10 errored sessions."""
    rows = []
    crashed = {(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (3, 0), (4, 0)}
    for device in range(400):
        for number in range(3 if device < 200 else 2):
            start = T0 + 3600 + device * 60 + number * 7200
            fatal = (device, number) in crashed
            unhandled = device >= 390 and number == 0
            rows += session(f"d{device}", f"d{device}-s{number}", start, end=not fatal, fatal=fatal, unhandled=unhandled)
    return rows


def test_crash_free_fixture(conn: sqlite3.Connection) -> None:
    """1000 sessions, 400 devices, 7 crashed on 5 devices give 99.30 % and 98.75 %."""
    store(conn, crash_fixture())
    summary = summarise(conn)
    assert summary.sessions.count == 1000
    assert summary.sessions.crashed == 7
    assert summary.sessions.errored == 10
    assert summary.sessions.abnormal == 0
    assert summary.crash_free.sessions_pct == 99.3
    assert summary.crash_free.users_pct == 98.75
    assert summary.by_release[0].crash_free_sessions_pct == 99.3


def test_usage_rolling_windows(conn: sqlite3.Connection) -> None:
    """DAU, WAU and MAU count distinct devices over 1, 7 and 30 days ending today."""
    rows = [event("screen_view", T0 + 10, device="today", screen="home")]
    rows.append(event("screen_view", T0 - 3 * DAY, device="week", screen="home"))
    rows.append(event("screen_view", T0 - 20 * DAY, device="month", screen="home"))
    rows.append(event("screen_view", T0 - 40 * DAY, device="old", screen="home"))
    store(conn, rows)
    usage = summarise(conn).usage
    assert (usage.dau, usage.wau, usage.mau) == (1, 2, 3)
    assert usage.stickiness == round(1 / 3, 4)


def test_daily_buckets_follow_timezone(conn: sqlite3.Connection) -> None:
    """An event at 23:30 UTC falls on the next day in Europe/Berlin."""
    store(conn, session("d1", "s1", T0 + DAY - 1800, length=60))
    utc = summarise(conn, start=T0, end=T0 + 2 * DAY, now=T0 + 2 * DAY)
    berlin = summarise(conn, start=T0, end=T0 + 2 * DAY, now=T0 + 2 * DAY, timezone="Europe/Berlin")
    assert [(row.day, row.sessions) for row in utc.daily][0][1] == 1
    [busy] = [row for row in berlin.daily if row.sessions]
    assert busy.day == utc.daily[1].day
    assert busy.active_devices == 1
    assert berlin.window.timezone == "Europe/Berlin"


def test_session_durations(conn: sqlite3.Connection) -> None:
    """Median and p90 of 10, 20, …, 100 s are 50 s and 90 s (nearest rank)."""
    rows = []
    for index in range(10):
        rows += session(f"d{index}", f"s{index}", T0 + 3600 + index, length=10.0 * (index + 1))
    store(conn, rows)
    stats = summarise(conn).sessions
    assert stats.median_duration_s == 50.0
    assert stats.p90_duration_s == 90.0
    assert stats.per_device == 1.0


def test_top_screens_time_capped(conn: sqlite3.Connection) -> None:
    """Time on screen is the gap to the next view or session end, capped at 30 minutes."""
    base = T0 + 3600
    rows = [
        event("app_launch", base),
        event("screen_view", base + 1, screen="home"),
        event("screen_view", base + 11, screen="send"),
        event("screen_view", base + 41, screen="settings"),
        event("screen_view", base + 50, screen="home", session="s2"),
        event("session_end", base + 41 + 3 * 3600, duration_s=10841.0),
    ]
    store(conn, rows)
    screens = {row.screen: row for row in summarise(conn).top_screens}
    assert screens["home"].views == 2
    assert screens["home"].devices == 1
    assert screens["send"].median_time_s == 30.0
    assert screens["home"].median_time_s == 10.0
    assert screens["settings"].median_time_s == 1800.0


def test_app_start_percentiles(conn: sqlite3.Connection) -> None:
    """Cold and warm starts get separate p50, p95 and p99 per version and platform."""
    rows = [
        event("performance_metric", T0 + 3600 + i, name="app_start_time", value=float(100 * (i + 1)),
              properties={"start": "cold"})
        for i in range(20)
    ]  # fmt: skip
    rows.append(event("performance_metric", T0 + 7200, name="app_start_time", value=300.0, properties={"start": "warm"}))
    store(conn, rows)
    starts = {row.start: row for row in summarise(conn).app_start}
    assert (starts["cold"].p50_ms, starts["cold"].p95_ms, starts["cold"].p99_ms) == (1000.0, 1900.0, 2000.0)
    assert starts["warm"].count == 1
    assert summarise(conn).by_release[0].app_start_p95_ms == 1900.0


def test_network_by_route(conn: sqlite3.Connection) -> None:
    """Calls group by method and normalised route with latency percentiles and success rate."""
    props = [
        {"method": "get", "url": "https://api.example/v1/tx/123?x=1", "status_code": 200},
        {"method": "GET", "route": "/v1/tx/456", "status_code": 503},
        {"method": "GET", "path": "/v1/tx/789", "status_code": 200},
        {"method": "GET", "path": "/v1/tx/790", "network_error": True},
    ]
    rows = [
        event("performance_metric", T0 + 3600 + i, name="network_request_latency", value=float(50 * (i + 1)), properties=p)
        for i, p in enumerate(props)
    ]
    store(conn, rows)
    [row] = summarise(conn).network
    assert (row.method, row.route, row.count) == ("GET", "/v1/tx/:id", 4)
    assert (row.p50_ms, row.p95_ms) == (100.0, 200.0)
    assert row.success_pct == 50.0


def test_route_normalisation() -> None:
    """Ids, UUIDs and query strings leave the route."""
    assert normalise_route("/users/42/wallets/0x52908400098527886E0F7030069857D2E4169EE7?q=1") == "/users/:id/wallets/:id"
    assert normalise_route("/a/123e4567-e89b-12d3-a456-426614174000/b") == "/a/:id/b"
    assert normalise_route("prices/latest") == "/prices/latest"


def test_transactions_interactions_errors(conn: sqlite3.Connection) -> None:
    """Transactions sum by type and asset; interactions and errors are counted."""
    base = T0 + 3600
    rows = [
        event("transaction", base, tx_type="send", asset="BTC", amount=0.5),
        event("transaction", base + 1, tx_type="send", asset="BTC", amount=0.25),
        event("transaction", base + 2, tx_type="swap", asset="ETH", amount=2.0),
        event("user_interaction", base + 3, element="send_button", action="tap"),
        event("error", base + 4, message="x", fatal=True, handled=False),
        event("error", base + 5, message="y", fatal=False, handled=True),
    ]
    store(conn, rows)
    summary = summarise(conn)
    assert [(t.type, t.asset, t.count, t.volume) for t in summary.transactions][0] == ("send", "BTC", 2, 0.75)
    assert summary.interactions[0].count == 1
    assert (summary.errors.count, summary.errors.fatal, summary.errors.handled) == (2, 1, 1)


def test_late_event_recomputes_hour(conn: sqlite3.Connection) -> None:
    """An event for an hour already rolled up is counted after the next refresh."""
    store(conn, [event("screen_view", T0 + 3600, device="a", screen="home")])
    assert summarise(conn).top_screens[0].views == 1
    store(conn, [event("screen_view", T0 + 3700, device="b", screen="home")])
    refreshed = summarise(conn)
    assert refreshed.top_screens[0].views == 2
    assert refreshed.usage.dau == 2


def test_filters_version_platform(conn: sqlite3.Connection) -> None:
    """Version and platform filters restrict sessions and rollups."""
    rows = session("d1", "s1", T0 + 3600) + session("d2", "s2", T0 + 3600, version="2.4.0", platform="ios")
    store(conn, rows)
    summary = summarise(conn, version="2.4.0", platform="ios")
    assert summary.sessions.count == 1
    assert summary.usage.dau == 1
    assert summary.filters.version == "2.4.0"


def test_ingest_counters(conn: sqlite3.Connection) -> None:
    """The ingest view shows accepted events and the last event per release."""
    store(conn, [event("app_launch", T0 + 10)])
    ingest = summarise(conn).ingest
    assert ingest.accepted == 1
    assert ingest.last_event[0].version == "2.3.0"


def test_unknown_start_kind(conn: sqlite3.Connection) -> None:
    """A start without a kind counts in the release p95 but in no cold or warm row."""
    store(conn, [event("performance_metric", T0 + 3600, name="app_start_time", value=700.0)])
    summary = summarise(conn)
    assert summary.app_start == []
    assert summary.by_release[0].app_start_p95_ms == 700.0


def test_network_without_route(conn: sqlite3.Connection) -> None:
    """A request metric without route properties is grouped under route unknown."""
    store(conn, [event("performance_metric", T0 + 3600, name="network_request_latency", value=80.0)])
    [row] = summarise(conn).network
    assert row.route == "unknown"


def test_dst_day_boundaries(conn: sqlite3.Connection) -> None:
    """On the spring DST day in Berlin, 00:30 and 23:30 local time fall on the same 23-hour day."""
    midnight_utc = 1_774_738_800.0  # 2026-03-29 00:00 Europe/Berlin (UTC+1), a 23-hour day
    store(conn, [
        event("app_launch", midnight_utc + 1800, session="a", device="early"),
        event("app_launch", midnight_utc + 22 * 3600 + 1800, session="b", device="late"),
    ])  # fmt: skip
    summary = summarise(conn, start=midnight_utc, end=midnight_utc + 23 * 3600, now=midnight_utc + 23 * 3600,
                        timezone="Europe/Berlin")  # fmt: skip
    assert [(row.day, row.sessions, row.active_devices) for row in summary.daily] == [("2026-03-29", 2, 2)]


def test_session_across_midnight(conn: sqlite3.Connection) -> None:
    """A session running across midnight counts its device as active on both days."""
    store(conn, session("d1", "s1", T0 - 600, length=1200))
    summary = summarise(conn, start=T0 - DAY, end=T0 + DAY)
    assert [row.active_devices for row in summary.daily] == [1, 1]
