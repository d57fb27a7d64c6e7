"""Keep analytics sessions and hourly rollups up to date with the stored events.

The `app_health` collector calls `refresh` every cycle, and `atlas analytics
summary` calls it before reading. `refresh` claims the events stored since the last
run (`storage.analytics_rollups.claim_new_events`), rederives the sessions of every
device they touch, and rewrites each UTC hour they fall in, then each UTC day of those
hours (`storage.analytics_days`). A late event therefore recomputes its past hour and
day, and the reports read only rollups and sessions.

Choices: percentiles come from histograms of whole milliseconds per hour (whole
seconds for time on screen), which are exact to that unit and smaller than the raw
values once an hour has many samples. A
device's sessions are rederived from `SESSION_LOOKBACK` before its oldest new event,
and only sessions starting `SESSION_SETTLED` after that cut are rewritten, so a
session is assumed to last less than 12 hours.

Conventions read from event properties (kept at privacy level `full` only):
`app_start_time` metrics carry `start` = `cold` or `warm`; `network_request_latency`
metrics carry `method`, `route` (or `path` or `url`), `status_code` (or `status`)
and `network_error`. A missing start kind or route is rolled up as `unknown`.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from atlas_tui.analytics.sessions import DeviceEvent, derive_sessions
from storage.analytics_days import derive_hour, dirty_days, rebuild_day
from storage.analytics_rollups import (
    HOUR,
    HistRow,
    HourEvent,
    HourlyRow,
    claim_new_events,
    dirty_devices,
    dirty_hours,
    finish_device,
    hour_events,
    mark_hours_dirty,
    replace_hour,
    reset_watermark,
    session_screen_events,
)
from storage.db import transaction
from storage.sessions import device_events, replace_sessions

__all__ = ["MAX_SCREEN_TIME", "UNKNOWN", "RefreshResult", "aggregate_hour", "normalise_route", "rebuild", "refresh"]

logger = logging.getLogger(__name__)

MAX_SCREEN_TIME = 1800.0
"""Seconds at which time on one screen is capped."""

UNKNOWN = "unknown"
"""Key of app starts without a start kind and of requests without a route, as at privacy level `standard`."""

SESSION_LOOKBACK = 86400.0
SESSION_SETTLED = 43200.0
_CLAIM_BATCH = 20000
_DEVICE_BATCH = 200
_DAY_BATCH = 20

_ID_SEGMENT = re.compile(
    r"^(\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|"
    r"(0x)?[0-9a-fA-F]{16,}|[A-Za-z0-9_-]*\d[A-Za-z0-9_-]{7,})$"
)


@dataclass
class RefreshResult:
    """Counts of the events claimed, devices rederived, hours rewritten and days rebuilt by one `refresh`."""

    events: int = 0
    devices: int = 0
    hours: int = 0
    days: int = 0


def refresh(conn: sqlite3.Connection) -> RefreshResult:
    """Bring sessions and hourly rollups up to date with every stored event. **Writes**, short transactions.

    Safe to run from several processes at once: each step is idempotent.
    """
    result = RefreshResult()
    while (claimed := claim_new_events(conn, _CLAIM_BATCH)) > 0:
        result.events += claimed
    while batch := dirty_devices(conn, _DEVICE_BATCH):
        with transaction(conn):
            for app_id, device_hash, since in batch:
                _rederive_device(conn, app_id, device_hash, since)
        result.devices += len(batch)
    while hours := dirty_hours(conn, 50):
        for app_id, hour in hours:
            # Reading inside the write transaction keeps a concurrent refresh from
            # queueing the hour again between this read and the unqueue in `replace_hour`.
            with transaction(conn):
                hourly, hist, devices = aggregate_hour(conn, app_id, hour)
                replace_hour(conn, app_id, hour, hourly, hist, devices)
                derive_hour(conn, app_id, hour)
        result.hours += len(hours)
    # Days after hours: a day is rebuilt from its hour rows, once for all its rewritten hours.
    while days := dirty_days(conn, _DAY_BATCH):
        for app_id, day in days:
            with transaction(conn):
                rebuild_day(conn, app_id, day)
        result.days += len(days)
    if result.events:
        logger.debug(
            "analytics rollups refreshed events=%d devices=%d hours=%d days=%d",
            result.events, result.devices, result.hours, result.days,
        )  # fmt: skip
    return result


def rebuild(conn: sqlite3.Connection) -> RefreshResult:
    """Recompute every session and rollup from the stored events. **Writes**, short transactions.

    Moves the watermark back to the first event, so `refresh` claims every event again
    and rewrites each device's sessions, each hour and each day. The old rows stay
    readable until their replacement is written, so reports never see empty tables.
    """
    reset_watermark(conn)
    logger.info("analytics rollups rebuild started")
    result = refresh(conn)
    logger.info("analytics rollups rebuild finished events=%d hours=%d days=%d", result.events, result.hours, result.days)
    return result


def normalise_route(route: str) -> str:
    """Drop the scheme, host and query of `route` and replace id-like path segments with `:id`."""
    path = route.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    segments = [":id" if _ID_SEGMENT.match(segment) else segment for segment in path.split("/")]
    normalised = "/".join(segments)
    return normalised if normalised.startswith("/") else "/" + normalised


def _rederive_device(conn: sqlite3.Connection, app_id: str, device_hash: str, since: float) -> None:
    cut = since - SESSION_LOOKBACK
    events = [DeviceEvent(*row) for row in device_events(conn, app_id, device_hash, cut)]
    sessions = derive_sessions(events, same_device=bool(device_hash))
    settled = cut + SESSION_SETTLED
    replace_sessions(
        conn,
        app_id,
        device_hash,
        settled,
        [
            (s.session_id, s.app_version, s.platform, s.started_at, s.last_event_at, s.duration_s, s.end_reason,
             int(s.fatal), int(s.unhandled))
            for s in sessions
        ],
    )  # fmt: skip
    # Time on screen runs to the next screen view, so every hour a touched session
    # spans is rewritten, not only the hours of the new events.
    hours = {
        (app_id, hour)
        for s in sessions
        if s.started_at >= settled
        for hour in range(int(s.started_at // HOUR) * HOUR, int(s.last_event_at // HOUR) * HOUR + 1, HOUR)
    }
    mark_hours_dirty(conn, hours)
    finish_device(conn, app_id, device_hash, since)


@dataclass
class _HourTally:
    counts: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    totals: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    hist: Counter[tuple[str, str, str, str, str, int]] = field(default_factory=Counter)
    devices: set[tuple[str, str, str, str]] = field(default_factory=set)

    def add(self, dims: tuple[str, str], metric: str, key1: str = "", key2: str = "", total: float = 0.0) -> None:
        self.counts[(*dims, metric, key1, key2)] += 1
        self.totals[(*dims, metric, key1, key2)] += total

    def sample(self, dims: tuple[str, str], metric: str, key1: str, key2: str, value: float) -> None:
        self.hist[(*dims, metric, key1, key2, int(round(value)))] += 1


def aggregate_hour(
    conn: sqlite3.Connection, app_id: str, hour: int
) -> tuple[list[HourlyRow], list[HistRow], set[tuple[str, str, str, str]]]:
    """Compute the rollup rows of one app and UTC hour from its events. **Read-only.**"""
    events = hour_events(conn, app_id, hour)
    tally = _HourTally()
    for event in events:
        _tally_event(tally, event)
    _tally_screen_times(conn, app_id, events, tally)
    hourly = [(*key, count, tally.totals[key]) for key, count in tally.counts.items()]
    hist = [(*key, count) for key, count in tally.hist.items()]
    return hourly, hist, tally.devices


def _tally_event(tally: _HourTally, event: HourEvent) -> None:
    device, _session, kind, version, platform, attrs_json, properties_json, _ts = event
    dims = (version, platform)
    attrs = _object(attrs_json)
    tally.add(dims, "events")
    if device:
        tally.devices.add((version, platform, "", device))
    if kind == "screen_view":
        screen = str(attrs.get("screen", ""))
        tally.add(dims, "screen_view", screen)
        if device:
            tally.devices.add((version, platform, screen, device))
    elif kind == "user_interaction":
        tally.add(dims, "interaction", str(attrs.get("element", "")), str(attrs.get("action", "")))
    elif kind == "transaction":
        amount = attrs.get("amount")
        volume = float(amount) if isinstance(amount, (int, float)) else 0.0
        tally.add(dims, "transaction", str(attrs.get("tx_type", "")), str(attrs.get("asset", "")), volume)
    elif kind == "error":
        tally.add(dims, "error", _error_kind(attrs))
    elif kind == "performance_metric":
        _tally_metric(tally, dims, attrs, _object(properties_json))


def _tally_metric(tally: _HourTally, dims: tuple[str, str], attrs: dict[str, object], properties: dict[str, object]) -> None:
    value = attrs.get("value")
    if not isinstance(value, (int, float)) or value < 0:
        return
    name = attrs.get("name")
    if name == "app_start_time":
        start = properties.get("start")
        tally.sample(dims, "app_start", start if start in ("cold", "warm") else UNKNOWN, "", value)
    elif name == "network_request_latency":
        method = str(properties.get("method") or "GET").upper()
        raw_route = properties.get("route") or properties.get("path") or properties.get("url")
        route = normalise_route(str(raw_route)) if raw_route else UNKNOWN
        status = properties.get("status_code", properties.get("status"))
        failed = properties.get("network_error") is True or (isinstance(status, int) and status >= 500)
        tally.add(dims, "network", method, route, 0.0 if failed else 1.0)
        tally.sample(dims, "network", method, route, value)


def _tally_screen_times(conn: sqlite3.Connection, app_id: str, events: list[HourEvent], tally: _HourTally) -> None:
    views = [event for event in events if event[2] == "screen_view" and event[1]]
    if not views:
        return
    following: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for session_id, kind, ts in session_screen_events(conn, app_id, sorted({view[1] for view in views})):
        following[session_id].append((ts, kind))
    for timeline in following.values():
        timeline.sort()
    for _device, session_id, _kind, version, platform, attrs_json, _props, ts in views:
        later = next((other for other, _ in following[session_id] if other > ts), None)
        if later is None:
            continue
        seconds = min(later - ts, MAX_SCREEN_TIME)
        tally.sample((version, platform), "screen_time_s", str(_object(attrs_json).get("screen", "")), "", seconds)


def _error_kind(attrs: dict[str, object]) -> str:
    if attrs.get("fatal") is True:
        return "fatal"
    if attrs.get("handled") is False:
        return "unhandled"
    return "handled"


def _object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
