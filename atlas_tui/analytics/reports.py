"""The analytics summary: usage, sessions, crash-free rates, screens, performance and ingest.

`GET /api/analytics`, `atlas analytics summary` and the console's Analytics pane call
`build_summary`. It reads whole UTC days of the window from the day rollups
(`storage.analytics_days`, `storage.analytics_packed`) and the hours around them from
the hour rollups, the sessions through `atlas_tui.analytics.session_report`, and the
ingest counters, never raw events except for the last hour of receipts in the ingest
view. So its cost grows with the days in the window, not with the stored events. Run
`atlas_tui.analytics.rollups.refresh` first for up-to-date numbers; the daemon's
`app_health` collector does so every minute.

Invariants: read-only. Stored times stay UTC; `timezone` only decides where calendar
days start. Percentiles use the nearest-rank method (the smallest value with at
least p % of the samples at or below it). Sessions count in the window they start
in. Rollup hours are UTC hours, so a zone whose offset is not a whole number of
hours gets day boundaries rounded down to the hour.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from atlas_tui.analytics.models import (
    AnalyticsSummary,
    AppStartRow,
    CrashFree,
    DailyRow,
    Errors,
    Filters,
    IngestStats,
    InteractionRow,
    LastEvent,
    NetworkRow,
    ReleaseRow,
    ScreenRow,
    SessionStats,
    TransactionRow,
    Usage,
    Window,
)
from atlas_tui.analytics.session_report import SessionFacts, read_session_facts
from storage.analytics_activity import count_active_devices, count_screen_devices
from storage.analytics_days import read_counts
from storage.analytics_packed import read_packed
from storage.analytics_rollups import HOUR, read_last_events
from storage.analytics_windows import WindowParts, split_hours
from storage.db import transaction
from storage.events import ingested_apps

__all__ = ["TOP_ROWS", "build_summary", "percentile"]

TOP_ROWS = 20
"""Rows kept in the top screens, interactions, transactions and network lists."""

_INGEST_RATE_WINDOW = 300.0
_SKEW_WINDOW = 3600.0

Filter = list[tuple[str, str]]
"""`(column, value)` equality conditions on `app_id`, `app_version` and `platform`."""

Hist = dict[tuple[str, str, str, str], dict[int, int]]
"""`(app_version, platform, key1, key2)` → value → count, as `storage.analytics_packed.read_packed` merges them."""


def build_summary(
    conn: sqlite3.Connection,
    *,
    start: float,
    end: float,
    app: str | None = None,
    version: str | None = None,
    platform: str | None = None,
    timezone: str = "UTC",
    now: float,
) -> AnalyticsSummary:
    """Build the summary of `[start, end)` for the filters. **Read-only**, one read transaction.

    Args:
        conn: A store connection outside any transaction.
        start: Window start, UTC epoch seconds.
        end: Window end, UTC epoch seconds; DAU, WAU and MAU end on its day.
        app: App id, or None for all apps.
        version: App version, or None for all.
        platform: `android` or `ios`, or None for both.
        timezone: IANA zone whose calendar days the daily rows use.
        now: Current time; open sessions idle for 30 minutes by then count as abnormal.
    """
    zone = ZoneInfo(timezone)
    filters = [(column, value) for column, value in (("app_id", app), ("app_version", version), ("platform", platform))
               if value is not None]  # fmt: skip
    hours = (_floor_hour(start), _ceil_hour(end))
    parts = split_hours(*hours)
    with transaction(conn, immediate=False):
        sessions = read_session_facts(conn, start, end, now, zone, filters)
        hist = read_packed(conn, parts, {"app_start": True, "screen_time_s": False, "network": False}, filters)
        usage, daily_devices = _active_devices(conn, zone, start, end, min(end, now), filters)
        summary = AnalyticsSummary(
            window=Window(start=start, end=end, timezone=timezone),
            filters=Filters(app=app, version=version, platform=platform),
            usage=usage,
            daily=[DailyRow(day=day.isoformat(), active_devices=devices, sessions=sessions.per_day[day])
                   for day, devices in daily_devices],  # fmt: skip
            sessions=_session_stats(sessions),
            crash_free=_crash_free(sessions),
            by_release=_by_release(sessions, hist["app_start"]),
            top_screens=_top_screens(conn, parts, hours, filters, hist["screen_time_s"]),
            interactions=_interactions(conn, parts, filters),
            transactions=_transactions(conn, parts, filters),
            app_start=_app_start(hist["app_start"]),
            network=_network(conn, parts, filters, hist["network"]),
            errors=_errors(conn, parts, filters),
            ingest=_ingest(conn, app, version, platform, now),
        )
    return summary


def percentile(counts: Iterable[tuple[float, int]], p: float) -> float | None:
    """Return the nearest-rank `p`-th percentile of `(value, count)` pairs, or None when empty."""
    ordered = sorted((value, count) for value, count in counts if count > 0)
    total = sum(count for _, count in ordered)
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100.0 * total))
    seen = 0
    for value, count in ordered:
        seen += count
        if seen >= rank:
            return float(value)
    return float(ordered[-1][0])  # pragma: no cover - the loop always reaches the rank


# --- usage and days ---------------------------------------------------------------


def _active_devices(
    conn: sqlite3.Connection, zone: ZoneInfo, start: float, end: float, until: float, filters: Filter
) -> tuple[Usage, list[tuple[date, int]]]:
    """Count DAU, WAU and MAU ending on the day of `until`, and the active devices of each day of the window."""
    today = datetime.fromtimestamp(until - 1e-6, zone).date()
    day_end = _floor_hour(_day_start(today + timedelta(days=1), zone))
    windows = [(_floor_hour(_day_start(today - timedelta(days=days - 1), zone)), day_end) for days in (1, 7, 30)]
    days = _window_days(zone, start, end)
    for day in days:
        windows.append((_floor_hour(_day_start(day, zone)), _floor_hour(_day_start(day + timedelta(days=1), zone))))
    counts = count_active_devices(conn, windows, filters)
    dau, wau, mau = counts[:3]
    usage = Usage(dau=dau, wau=wau, mau=mau, stickiness=round(dau / mau, 4) if mau else None)
    return usage, list(zip(days, counts[3:]))


def _window_days(zone: ZoneInfo, start: float, end: float) -> list[date]:
    first = datetime.fromtimestamp(start, zone).date()
    last = datetime.fromtimestamp(max(start, end - 1e-6), zone).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _day_start(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(0), zone).timestamp()


# --- sessions and crash-free ------------------------------------------------------


def _session_stats(sessions: SessionFacts) -> SessionStats:
    count = sessions.count()
    return SessionStats(
        count=count,
        median_duration_s=sessions.median_duration_s,
        p90_duration_s=sessions.p90_duration_s,
        per_device=round(count / sessions.devices, 4) if sessions.devices else None,
        crashed=sessions.count("crashed"),
        abnormal=sessions.count("abnormal"),
        errored=sessions.count("errored"),
    )


def _crash_free(sessions: SessionFacts) -> CrashFree:
    sessions_pct, users_pct = _crash_free_rates(
        sessions.count(), sessions.count("crashed"), sessions.devices, sessions.crashed_devices
    )
    return CrashFree(sessions_pct=sessions_pct, users_pct=users_pct)


def _crash_free_rates(count: int, crashed: int, devices: int, crashed_devices: int) -> tuple[float | None, float | None]:
    if not count:
        return None, None
    sessions_pct = round(100.0 * (1 - crashed / count), 4)
    users_pct = round(100.0 * (1 - crashed_devices / devices), 4) if devices else None
    return sessions_pct, users_pct


def _by_release(sessions: SessionFacts, app_starts: Hist) -> list[ReleaseRow]:
    starts: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for (version, platform, _kind, _key2), counts in app_starts.items():
        starts[(version, platform)].update(counts)
    rows = []
    for release in sorted(sessions.releases() | set(starts)):
        count = sessions.count(release=release)
        devices, crashed_devices = sessions.release_devices.get(release, (0, 0))
        sessions_pct, users_pct = _crash_free_rates(count, sessions.count("crashed", release), devices, crashed_devices)
        rows.append(
            ReleaseRow(
                version=release[0], platform=release[1], sessions=count, crash_free_sessions_pct=sessions_pct,
                crash_free_users_pct=users_pct, app_start_p95_ms=percentile(starts.get(release, {}).items(), 95),
            )
        )  # fmt: skip
    return rows


# --- screens, interactions, transactions, errors ----------------------------------


def _top_screens(
    conn: sqlite3.Connection, parts: WindowParts, hours: tuple[int, int], filters: Filter, times: Hist
) -> list[ScreenRow]:
    views: Counter[str] = Counter()
    for _version, _platform, screen, _key2, count, _total in read_counts(conn, "screen_view", parts, filters):
        views[screen] += count
    top = views.most_common(TOP_ROWS)
    devices = count_screen_devices(conn, [screen for screen, _ in top], *hours, filters)
    rows = []
    for screen, count in top:
        rows.append(
            ScreenRow(
                screen=screen, views=count, devices=devices.get(screen, 0),
                median_time_s=percentile(times.get(("", "", screen, ""), {}).items(), 50),
            )
        )  # fmt: skip
    return rows


def _interactions(conn: sqlite3.Connection, parts: WindowParts, filters: Filter) -> list[InteractionRow]:
    counts: Counter[tuple[str, str]] = Counter()
    for _version, _platform, element, action, count, _total in read_counts(conn, "interaction", parts, filters):
        counts[(element, action)] += count
    return [InteractionRow(element=e, action=a, count=n) for (e, a), n in counts.most_common(TOP_ROWS)]


def _transactions(conn: sqlite3.Connection, parts: WindowParts, filters: Filter) -> list[TransactionRow]:
    counts: Counter[tuple[str, str]] = Counter()
    volumes: dict[tuple[str, str], float] = defaultdict(float)
    for _version, _platform, kind, asset, count, total in read_counts(conn, "transaction", parts, filters):
        counts[(kind, asset)] += count
        volumes[(kind, asset)] += total
    return [
        TransactionRow(type=kind, asset=asset, count=count, volume=round(volumes[(kind, asset)], 8))
        for (kind, asset), count in counts.most_common(TOP_ROWS)
    ]


def _errors(conn: sqlite3.Connection, parts: WindowParts, filters: Filter) -> Errors:
    kinds: Counter[str] = Counter()
    for _version, _platform, kind, _key2, count, _total in read_counts(conn, "error", parts, filters):
        kinds[kind] += count
    return Errors(count=sum(kinds.values()), fatal=kinds["fatal"], handled=kinds["handled"])


# --- performance ------------------------------------------------------------------


def _app_start(app_starts: Hist) -> list[AppStartRow]:
    grouped: dict[tuple[str, str, str], Counter[int]] = defaultdict(Counter)
    for (version, platform, kind, _key2), counts in app_starts.items():
        # Starts of unknown kind count in the release's p95 but in neither row here.
        if kind in ("cold", "warm"):
            grouped[(version, platform, kind)].update(counts)
    rows = []
    for (version, platform, kind), values in sorted(grouped.items()):
        rows.append(
            AppStartRow(
                version=version, platform=platform, start="warm" if kind == "warm" else "cold",
                count=sum(values.values()), p50_ms=percentile(values.items(), 50),
                p95_ms=percentile(values.items(), 95), p99_ms=percentile(values.items(), 99),
            )
        )  # fmt: skip
    return rows


def _network(conn: sqlite3.Connection, parts: WindowParts, filters: Filter, latencies: Hist) -> list[NetworkRow]:
    counts: Counter[tuple[str, str]] = Counter()
    successes: dict[tuple[str, str], float] = defaultdict(float)
    for _version, _platform, method, route, count, total in read_counts(conn, "network", parts, filters):
        counts[(method, route)] += count
        successes[(method, route)] += total
    rows = []
    for (method, route), count in counts.most_common(TOP_ROWS):
        values = latencies.get(("", "", method, route), {}).items()
        rows.append(
            NetworkRow(
                method=method, route=route, count=count, p50_ms=percentile(values, 50), p95_ms=percentile(values, 95),
                success_pct=round(100.0 * successes[(method, route)] / count, 4),
            )
        )  # fmt: skip
    return rows


# --- ingest -----------------------------------------------------------------------


def _ingest(conn: sqlite3.Connection, app: str | None, version: str | None, platform: str | None, now: float) -> IngestStats:
    accepted = duplicate = 0
    rejected: Counter[str] = Counter()
    for name, labels_json, value in conn.execute(
        "SELECT name, labels, value FROM analytics_counters WHERE name IN ('events_accepted', 'events_duplicate', 'events_rejected')"
    ):
        labels = dict(json.loads(labels_json))
        if app is not None and labels.get("app") != app:
            continue
        if name == "events_accepted":
            accepted += value
        elif name == "events_duplicate":
            duplicate += value
        else:
            rejected[labels.get("reason", "")] += value
    # Per app, so each query runs on the (app_id, received_at) index.
    recent = 0
    timing: list[tuple[float | None, float]] = []
    for app_id in [app] if app is not None else ingested_apps(conn):
        recent += conn.execute(
            "SELECT count(*) FROM analytics_events WHERE app_id = ? AND received_at > ? AND received_at <= ?",
            (app_id, now - _INGEST_RATE_WINDOW, now),
        ).fetchone()[0]
        timing.extend(
            conn.execute(
                "SELECT skew, received_at - event_ts FROM analytics_events WHERE app_id = ? AND received_at > ? "
                "AND received_at <= ? ORDER BY received_at DESC LIMIT 10000",
                (app_id, now - _SKEW_WINDOW, now),
            ).fetchall()
        )
    skews = [(row[0], 1) for row in timing if row[0] is not None]
    last = [
        LastEvent(app=a, version=v, platform=p, received_at=r)
        for a, v, p, r in read_last_events(conn, app)
        if (version is None or v == version) and (platform is None or p == platform)
    ]
    return IngestStats(
        events_per_minute=round(recent / (_INGEST_RATE_WINDOW / 60.0), 4),
        accepted=accepted,
        duplicate=duplicate,
        rejected=dict(rejected),
        median_skew_s=percentile(skews, 50),
        max_lateness_s=max((row[1] for row in timing), default=None),
        last_event=last,
    )


def _floor_hour(ts: float) -> int:
    return int(ts // HOUR) * HOUR


def _ceil_hour(ts: float) -> int:
    return int(-(-ts // HOUR)) * HOUR
