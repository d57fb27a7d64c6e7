"""The analytics summary: usage, sessions, crash-free rates, screens, performance and ingest.

`GET /api/analytics`, `atlas analytics summary` and the console's Analytics pane call
`build_summary`. It reads the hourly rollups (`storage.analytics_rollups`), the
sessions table (`storage.sessions`) and the ingest counters, never raw events except
for the last hour of receipts in the ingest view. Run
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
from collections.abc import Iterable, Sequence
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
from storage.analytics_rollups import (
    HOUR,
    ReportFilter,
    read_distinct_devices,
    read_hist,
    read_hourly,
    read_last_events,
    read_screen_devices,
)
from storage.db import transaction
from storage.events import ingested_apps
from storage.sessions import SessionRow, session_rows

__all__ = ["TOP_ROWS", "build_summary", "percentile"]

TOP_ROWS = 20
"""Rows kept in the top screens, interactions, transactions and network lists."""

_INGEST_RATE_WINDOW = 300.0
_SKEW_WINDOW = 3600.0


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
    where = ReportFilter(_floor_hour(start), _ceil_hour(end), app, version, platform)
    with transaction(conn, immediate=False):
        sessions = session_rows(conn, start, end, now, app=app, version=version, platform=platform)
        app_starts = read_hist(conn, where, "app_start")
        summary = AnalyticsSummary(
            window=Window(start=start, end=end, timezone=timezone),
            filters=Filters(app=app, version=version, platform=platform),
            usage=_usage(conn, where, zone, min(end, now)),
            daily=_daily(conn, where, zone, start, end, sessions),
            sessions=_session_stats(sessions),
            crash_free=_crash_free(sessions),
            by_release=_by_release(sessions, app_starts),
            top_screens=_top_screens(conn, where),
            interactions=_interactions(conn, where),
            transactions=_transactions(conn, where),
            app_start=_app_start(app_starts),
            network=_network(conn, where),
            errors=_errors(conn, where),
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


def _usage(conn: sqlite3.Connection, where: ReportFilter, zone: ZoneInfo, until: float) -> Usage:
    today = datetime.fromtimestamp(until - 1e-6, zone).date()
    day_end = _day_start(today + timedelta(days=1), zone)

    def active(days: int) -> int:
        first = _day_start(today - timedelta(days=days - 1), zone)
        return read_distinct_devices(conn, _within(where, _floor_hour(first), _floor_hour(day_end)))

    dau, wau, mau = active(1), active(7), active(30)
    return Usage(dau=dau, wau=wau, mau=mau, stickiness=round(dau / mau, 4) if mau else None)


def _daily(
    conn: sqlite3.Connection, where: ReportFilter, zone: ZoneInfo, start: float, end: float, sessions: Sequence[SessionRow]
) -> list[DailyRow]:
    first = datetime.fromtimestamp(start, zone).date()
    last = datetime.fromtimestamp(max(start, end - 1e-6), zone).date()
    started = Counter(datetime.fromtimestamp(row[4], zone).date() for row in sessions)
    rows: list[DailyRow] = []
    day = first
    while day <= last:
        lower, upper = _day_start(day, zone), _day_start(day + timedelta(days=1), zone)
        devices = read_distinct_devices(conn, _within(where, _floor_hour(lower), _floor_hour(upper)))
        rows.append(DailyRow(day=day.isoformat(), active_devices=devices, sessions=started[day]))
        day += timedelta(days=1)
    return rows


def _day_start(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(0), zone).timestamp()


def _within(where: ReportFilter, start_hour: int, end_hour: int) -> ReportFilter:
    return ReportFilter(start_hour, end_hour, where.app, where.version, where.platform)


# --- sessions and crash-free ------------------------------------------------------


def _session_stats(sessions: Sequence[SessionRow]) -> SessionStats:
    states = Counter(row[6] for row in sessions)
    durations = [(row[5], 1) for row in sessions if row[6] != "open"]
    devices = {row[1] for row in sessions if row[1]}
    return SessionStats(
        count=len(sessions),
        median_duration_s=percentile(durations, 50),
        p90_duration_s=percentile(durations, 90),
        per_device=round(len(sessions) / len(devices), 4) if devices else None,
        crashed=states["crashed"],
        abnormal=states["abnormal"],
        errored=states["errored"],
    )


def _crash_free(sessions: Sequence[SessionRow]) -> CrashFree:
    sessions_pct, users_pct = _crash_free_rates(sessions)
    return CrashFree(sessions_pct=sessions_pct, users_pct=users_pct)


def _crash_free_rates(sessions: Sequence[SessionRow]) -> tuple[float | None, float | None]:
    if not sessions:
        return None, None
    crashed = sum(1 for row in sessions if row[6] == "crashed")
    devices = {row[1] for row in sessions if row[1]}
    crashed_devices = {row[1] for row in sessions if row[1] and row[6] == "crashed"}
    sessions_pct = round(100.0 * (1 - crashed / len(sessions)), 4)
    users_pct = round(100.0 * (1 - len(crashed_devices) / len(devices)), 4) if devices else None
    return sessions_pct, users_pct


def _by_release(sessions: Sequence[SessionRow], app_starts: Sequence[tuple[str, str, str, str, int, int]]) -> list[ReleaseRow]:
    grouped: dict[tuple[str, str], list[SessionRow]] = defaultdict(list)
    for row in sessions:
        grouped[(row[2], row[3])].append(row)
    starts: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for version, platform, _kind, _key2, value, count in app_starts:
        starts[(version, platform)].append((value, count))
    rows = []
    for version, platform in sorted(set(grouped) | set(starts)):
        release = grouped.get((version, platform), [])
        sessions_pct, users_pct = _crash_free_rates(release)
        rows.append(
            ReleaseRow(
                version=version, platform=platform, sessions=len(release), crash_free_sessions_pct=sessions_pct,
                crash_free_users_pct=users_pct, app_start_p95_ms=percentile(starts.get((version, platform), []), 95),
            )
        )  # fmt: skip
    return rows


# --- screens, interactions, transactions, errors ----------------------------------


def _top_screens(conn: sqlite3.Connection, where: ReportFilter) -> list[ScreenRow]:
    views: Counter[str] = Counter()
    for _version, _platform, screen, _key2, count, _total in read_hourly(conn, where, "screen_view"):
        views[screen] += count
    times: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for _version, _platform, screen, _key2, value, count in read_hist(conn, where, "screen_time_s", by_release=False):
        times[screen].append((value, count))
    devices = read_screen_devices(conn, where)
    rows = []
    for screen, count in views.most_common(TOP_ROWS):
        rows.append(
            ScreenRow(
                screen=screen, views=count, devices=devices.get(screen, 0),
                median_time_s=percentile(times.get(screen, []), 50),
            )
        )  # fmt: skip
    return rows


def _interactions(conn: sqlite3.Connection, where: ReportFilter) -> list[InteractionRow]:
    counts: Counter[tuple[str, str]] = Counter()
    for _version, _platform, element, action, count, _total in read_hourly(conn, where, "interaction"):
        counts[(element, action)] += count
    return [InteractionRow(element=e, action=a, count=n) for (e, a), n in counts.most_common(TOP_ROWS)]


def _transactions(conn: sqlite3.Connection, where: ReportFilter) -> list[TransactionRow]:
    counts: Counter[tuple[str, str]] = Counter()
    volumes: dict[tuple[str, str], float] = defaultdict(float)
    for _version, _platform, kind, asset, count, total in read_hourly(conn, where, "transaction"):
        counts[(kind, asset)] += count
        volumes[(kind, asset)] += total
    return [
        TransactionRow(type=kind, asset=asset, count=count, volume=round(volumes[(kind, asset)], 8))
        for (kind, asset), count in counts.most_common(TOP_ROWS)
    ]


def _errors(conn: sqlite3.Connection, where: ReportFilter) -> Errors:
    kinds: Counter[str] = Counter()
    for _version, _platform, kind, _key2, count, _total in read_hourly(conn, where, "error"):
        kinds[kind] += count
    return Errors(count=sum(kinds.values()), fatal=kinds["fatal"], handled=kinds["handled"])


# --- performance ------------------------------------------------------------------


def _app_start(app_starts: Sequence[tuple[str, str, str, str, int, int]]) -> list[AppStartRow]:
    grouped: dict[tuple[str, str, str], list[tuple[float, int]]] = defaultdict(list)
    for version, platform, kind, _key2, value, count in app_starts:
        # Starts of unknown kind count in the release's p95 but in neither row here.
        if kind in ("cold", "warm"):
            grouped[(version, platform, kind)].append((value, count))
    rows = []
    for (version, platform, kind), values in sorted(grouped.items()):
        rows.append(
            AppStartRow(
                version=version, platform=platform, start="warm" if kind == "warm" else "cold",
                count=sum(count for _, count in values), p50_ms=percentile(values, 50),
                p95_ms=percentile(values, 95), p99_ms=percentile(values, 99),
            )
        )  # fmt: skip
    return rows


def _network(conn: sqlite3.Connection, where: ReportFilter) -> list[NetworkRow]:
    counts: Counter[tuple[str, str]] = Counter()
    successes: dict[tuple[str, str], float] = defaultdict(float)
    for _version, _platform, method, route, count, total in read_hourly(conn, where, "network"):
        counts[(method, route)] += count
        successes[(method, route)] += total
    latencies: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for _version, _platform, method, route, value, count in read_hist(conn, where, "network", by_release=False):
        latencies[(method, route)].append((value, count))
    return [
        NetworkRow(
            method=method, route=route, count=count, p50_ms=percentile(latencies[(method, route)], 50),
            p95_ms=percentile(latencies[(method, route)], 95),
            success_pct=round(100.0 * successes[(method, route)] / count, 4),
        )
        for (method, route), count in counts.most_common(TOP_ROWS)
    ]  # fmt: skip


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
