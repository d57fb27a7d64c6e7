"""An event-scan twin of `build_summary`: the same report computed from raw event rows, with no rollup.

The rollup tests build both and compare them. The reference reads every stored event
once, derives each device's sessions from all its events with
`atlas_tui.analytics.sessions.derive_sessions`, and applies the documented rules
directly: hour-aligned windows for event counts and devices, the exact window for
sessions, nearest-rank percentiles of whole milliseconds (time on screen: whole
seconds), time on screen up to the next screen view or session end, capped at 30
minutes. Rows with equal counts keep the order of their sorted keys, as the rollup
queries return them.

The ingest section reads no rollup, so it is left out (`summary.model_dump(exclude=...)`).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from atlas_tui.analytics.reports import TOP_ROWS, percentile
from atlas_tui.analytics.rollups import MAX_SCREEN_TIME, normalise_route
from atlas_tui.analytics.sessions import DeviceEvent, SessionRecord, derive_sessions, session_status

HOUR = 3600


@dataclass(frozen=True)
class Event:
    """One stored event row, with missing version and platform as ''."""

    app: str
    device: str | None
    session: str | None
    kind: str
    version: str
    platform: str
    attrs: dict[str, Any]
    properties: dict[str, Any]
    ts: float
    known: bool


def load_events(conn: sqlite3.Connection) -> list[Event]:
    """Read every stored event."""
    rows = conn.execute(
        "SELECT app_id, device_hash, session_id, type, coalesce(app_version, ''), coalesce(platform, ''), attrs, "
        "properties, event_ts, schema_known FROM analytics_events"
    ).fetchall()
    return [Event(a, d, s, k, v, p, json.loads(at), json.loads(pr), ts, bool(kn)) for a, d, s, k, v, p, at, pr, ts, kn in rows]


def reference_summary(
    events: list[Event],
    *,
    start: float,
    end: float,
    now: float,
    app: str | None = None,
    version: str | None = None,
    platform: str | None = None,
    timezone: str = "UTC",
) -> dict[str, Any]:
    """Return the summary `build_summary` should give, as `AnalyticsSummary.model_dump()` without `ingest`."""
    zone = ZoneInfo(timezone)

    def matches(app_id: str, app_version: str, os: str) -> bool:
        return (app is None or app_id == app) and (version is None or app_version == version) and (
            platform is None or os == platform
        )

    known = [event for event in events if event.known and matches(event.app, event.version, event.platform)]
    lo, hi = _floor_hour(start), _ceil_hour(end)
    window = [event for event in known if lo <= event.ts < hi]
    sessions = [
        (app_id, device, record, session_status(record, now))
        for app_id, device, record in _all_sessions(events)
        if start <= record.started_at < end and matches(app_id, record.app_version, record.platform)
    ]
    return {
        "window": {"start": start, "end": end, "timezone": timezone},
        "filters": {"app": app, "version": version, "platform": platform},
        "usage": _usage(known, zone, min(end, now)),
        "daily": _daily(known, sessions, zone, start, end),
        "sessions": _session_stats(sessions),
        "crash_free": dict(zip(("sessions_pct", "users_pct"), _crash_free(sessions))),
        "by_release": _by_release(sessions, window),
        "top_screens": _top_screens(window, events),
        "interactions": _interactions(window),
        "transactions": _transactions(window),
        "app_start": _app_start(window),
        "network": _network(window),
        "errors": _errors(window),
    }


def _all_sessions(events: list[Event]) -> list[tuple[str, str, SessionRecord]]:
    by_device: dict[tuple[str, str], list[DeviceEvent]] = defaultdict(list)
    for event in events:
        if event.known and event.session is not None:
            attrs = json.dumps(event.attrs)
            by_device[(event.app, event.device or "")].append(
                DeviceEvent(event.session, event.kind, event.ts, event.version, event.platform, attrs)
            )
    return [
        (app_id, device, record)
        for (app_id, device), found in by_device.items()
        for record in derive_sessions(found, same_device=bool(device))
    ]


def _usage(events: list[Event], zone: ZoneInfo, until: float) -> dict[str, Any]:
    today = datetime.fromtimestamp(until - 1e-6, zone).date()
    day_end = _floor_hour(_day_start(today + timedelta(days=1), zone))
    dau, wau, mau = (
        _devices(events, _floor_hour(_day_start(today - timedelta(days=days - 1), zone)), day_end) for days in (1, 7, 30)
    )
    return {"dau": dau, "wau": wau, "mau": mau, "stickiness": round(dau / mau, 4) if mau else None}


def _daily(events: list[Event], sessions: list, zone: ZoneInfo, start: float, end: float) -> list[dict[str, Any]]:
    started = Counter(datetime.fromtimestamp(record.started_at, zone).date() for _, _, record, _ in sessions)
    first = datetime.fromtimestamp(start, zone).date()
    last = datetime.fromtimestamp(max(start, end - 1e-6), zone).date()
    rows = []
    day = first
    while day <= last:
        lower = _floor_hour(_day_start(day, zone))
        upper = _floor_hour(_day_start(day + timedelta(days=1), zone))
        rows.append({"day": day.isoformat(), "active_devices": _devices(events, lower, upper), "sessions": started[day]})
        day += timedelta(days=1)
    return rows


def _devices(events: Iterable[Event], lower: float, upper: float) -> int:
    return len({event.device for event in events if event.device and lower <= event.ts < upper})


def _session_stats(sessions: list) -> dict[str, Any]:
    states = Counter(status for *_, status in sessions)
    durations = [(record.duration_s, 1) for _, _, record, status in sessions if status != "open"]
    devices = {device for _, device, _, _ in sessions if device}
    return {
        "count": len(sessions),
        "median_duration_s": percentile(durations, 50),
        "p90_duration_s": percentile(durations, 90),
        "per_device": round(len(sessions) / len(devices), 4) if devices else None,
        "crashed": states["crashed"],
        "abnormal": states["abnormal"],
        "errored": states["errored"],
    }


def _crash_free(sessions: list) -> tuple[float | None, float | None]:
    if not sessions:
        return None, None
    crashed = sum(1 for *_, status in sessions if status == "crashed")
    devices = {device for _, device, _, _ in sessions if device}
    crashed_devices = {device for _, device, _, status in sessions if device and status == "crashed"}
    users = round(100.0 * (1 - len(crashed_devices) / len(devices)), 4) if devices else None
    return round(100.0 * (1 - crashed / len(sessions)), 4), users


def _by_release(sessions: list, window: list[Event]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str], list] = defaultdict(list)
    for session in sessions:
        grouped[(session[2].app_version, session[2].platform)].append(session)
    starts: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for event, kind, value in _app_starts(window):
        starts[(event.version, event.platform)][value] += 1
    rows = []
    for release in sorted(set(grouped) | set(starts)):
        sessions_pct, users_pct = _crash_free(grouped.get(release, []))
        rows.append({
            "version": release[0], "platform": release[1], "sessions": len(grouped.get(release, [])),
            "crash_free_sessions_pct": sessions_pct, "crash_free_users_pct": users_pct,
            "app_start_p95_ms": percentile(starts.get(release, Counter()).items(), 95),
        })  # fmt: skip
    return rows


def _top_screens(window: list[Event], events: list[Event]) -> list[dict[str, Any]]:
    following: dict[tuple[str, str], list[float]] = defaultdict(list)
    for event in events:
        if event.session and event.kind in ("screen_view", "session_end"):
            following[(event.app, event.session)].append(event.ts)
    views: dict[tuple[str, str, str], int] = Counter()
    devices: dict[str, set[str]] = defaultdict(set)
    times: dict[str, Counter[int]] = defaultdict(Counter)
    for event in window:
        if event.kind != "screen_view":
            continue
        screen = str(event.attrs.get("screen", ""))
        views[(event.version, event.platform, screen)] += 1
        # Screen '' is the rollups' mark for "any screen", so it never gets devices of its own.
        if event.device and screen:
            devices[screen].add(event.device)
        later = [ts for ts in following[(event.app, event.session)] if ts > event.ts] if event.session else []
        if later:
            times[screen][int(round(min(min(later) - event.ts, MAX_SCREEN_TIME)))] += 1
    totals = _ordered(views, lambda key: key[2])
    return [
        {"screen": screen, "views": count, "devices": len(devices[screen]),
         "median_time_s": percentile(times[screen].items(), 50)}
        for screen, count in totals.most_common(TOP_ROWS)
    ]  # fmt: skip


def _interactions(window: list[Event]) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for event in window:
        if event.kind == "user_interaction":
            counts[(event.version, event.platform, str(event.attrs.get("element", "")), str(event.attrs.get("action", "")))] += 1
    totals = _ordered(counts, lambda key: key[2:])
    return [{"element": e, "action": a, "count": n} for (e, a), n in totals.most_common(TOP_ROWS)]


def _transactions(window: list[Event]) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    volumes: dict[tuple[str, str], float] = defaultdict(float)
    for event in window:
        if event.kind == "transaction":
            kind, asset = str(event.attrs.get("tx_type", "")), str(event.attrs.get("asset", ""))
            counts[(event.version, event.platform, kind, asset)] += 1
            amount = event.attrs.get("amount")
            volumes[(kind, asset)] += float(amount) if isinstance(amount, (int, float)) else 0.0
    totals = _ordered(counts, lambda key: key[2:])
    return [
        {"type": kind, "asset": asset, "count": count, "volume": round(volumes[(kind, asset)], 8)}
        for (kind, asset), count in totals.most_common(TOP_ROWS)
    ]


def _errors(window: list[Event]) -> dict[str, int]:
    kinds = Counter(_error_kind(event.attrs) for event in window if event.kind == "error")
    return {"count": sum(kinds.values()), "fatal": kinds["fatal"], "handled": kinds["handled"]}


def _error_kind(attrs: dict[str, Any]) -> str:
    if attrs.get("fatal") is True:
        return "fatal"
    return "unhandled" if attrs.get("handled") is False else "handled"


def _app_starts(window: list[Event]) -> list[tuple[Event, str, int]]:
    found = []
    for event in window:
        value = event.attrs.get("value")
        if event.kind == "performance_metric" and event.attrs.get("name") == "app_start_time" and _sample(value):
            start = event.properties.get("start")
            found.append((event, start if start in ("cold", "warm") else "unknown", int(round(value))))
    return found


def _app_start(window: list[Event]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str, str], Counter[int]] = defaultdict(Counter)
    for event, kind, value in _app_starts(window):
        if kind != "unknown":
            grouped[(event.version, event.platform, kind)][value] += 1
    return [
        {"version": version, "platform": platform, "start": kind, "count": sum(values.values()),
         "p50_ms": percentile(values.items(), 50), "p95_ms": percentile(values.items(), 95),
         "p99_ms": percentile(values.items(), 99)}
        for (version, platform, kind), values in sorted(grouped.items())
    ]  # fmt: skip


def _network(window: list[Event]) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    successes: Counter[tuple[str, str]] = Counter()
    latencies: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for event in window:
        value = event.attrs.get("value")
        if event.kind != "performance_metric" or event.attrs.get("name") != "network_request_latency" or not _sample(value):
            continue
        props = event.properties
        method = str(props.get("method") or "GET").upper()
        raw_route = props.get("route") or props.get("path") or props.get("url")
        route = normalise_route(str(raw_route)) if raw_route else "unknown"
        status = props.get("status_code", props.get("status"))
        failed = props.get("network_error") is True or (isinstance(status, int) and status >= 500)
        counts[(event.version, event.platform, method, route)] += 1
        successes[(method, route)] += 0 if failed else 1
        latencies[(method, route)][int(round(value))] += 1
    totals = _ordered(counts, lambda key: key[2:])
    return [
        {"method": method, "route": route, "count": count, "p50_ms": percentile(latencies[(method, route)].items(), 50),
         "p95_ms": percentile(latencies[(method, route)].items(), 95),
         "success_pct": round(100.0 * successes[(method, route)] / count, 4)}
        for (method, route), count in totals.most_common(TOP_ROWS)
    ]  # fmt: skip


def _sample(value: object) -> bool:
    return isinstance(value, (int, float)) and value >= 0


def _ordered(counts: Counter, key: Any) -> Counter:
    """Sum `counts` by `key(group)`, visiting groups in sorted order, as SQL GROUP BY returns them."""
    totals: Counter = Counter()
    for group in sorted(counts):
        totals[key(group)] += counts[group]
    return totals


def _day_start(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(0), zone).timestamp()


def _floor_hour(ts: float) -> int:
    return int(ts // HOUR) * HOUR


def _ceil_hour(ts: float) -> int:
    return int(math.ceil(ts / HOUR)) * HOUR
