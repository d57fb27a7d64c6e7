"""Mobile app health as metrics: crash-free sessions, app start p95 and ingest rate.

`atlas_tui.collection.build_collectors` adds `AppHealthCollector` when the config
lists analytics apps. Each cycle it brings the analytics rollups up to date
(`atlas_tui.analytics.rollups.refresh`) and turns the last day of sessions and
rollups into samples, so alert rules such as `app_crash_free_sessions < 99.5` run on
the same pipeline as host metrics.

Invariants: the work runs in a worker thread on a connection opened for the cycle
and closed after it. Series carry `app` and `platform`; crash-free and app start
also get one series per `version`. A release with no sessions (or no app starts) in
the window gets no sample, so a rule reads no data rather than a made-up 100 %.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from atlas_tui.analytics.reports import percentile
from atlas_tui.analytics.rollups import refresh
from collectors.base import Sample
from storage.analytics_rollups import HOUR, ReportFilter, read_hist
from storage.db import DB_FILENAME, connect
from storage.events import ingested_apps
from storage.sessions import session_rows

__all__ = ["HEALTH_WINDOW", "METRICS", "RATE_WINDOW", "AppHealthCollector"]

logger = logging.getLogger(__name__)

METRICS = frozenset({"app_crash_free_sessions", "app_start_time_p95_ms", "analytics_events_per_minute"})
"""Every metric name this collector can write."""

HEALTH_WINDOW = 86400.0
"""Seconds of sessions and app starts behind each crash-free and p95 sample."""

RATE_WINDOW = 300.0
"""Seconds of receipts behind each events-per-minute sample."""

_Key = tuple[tuple[str, str], ...]


class AppHealthCollector:
    """Refresh the analytics rollups and report app health per app, platform and version."""

    name = "app_health"

    def __init__(self, data_dir: Path, interval: float = 60.0) -> None:
        """Remember the store location; nothing is opened until the first cycle."""
        self.interval = interval
        self._path = Path(data_dir) / DB_FILENAME

    async def collect(self, now: float) -> list[Sample]:
        """Refresh the rollups and return this cycle's samples stamped with `now`."""
        return await asyncio.to_thread(self._collect, now)

    def unavailable_sources(self) -> Mapping[str, str]:
        """Return no sources: the store is the only one, and a failing store fails the cycle."""
        return {}

    def _collect(self, now: float) -> list[Sample]:
        if not self._path.is_file():
            return []
        conn = connect(self._path)
        try:
            refresh(conn)
            return [*_crash_free(conn, now), *_app_start(conn, now), *_event_rate(conn, now)]
        finally:
            conn.close()


def _crash_free(conn: sqlite3.Connection, now: float) -> list[Sample]:
    totals: dict[_Key, list[int]] = defaultdict(lambda: [0, 0])
    for app_id, _device, version, platform, _started, _duration, status in session_rows(conn, now - HEALTH_WINDOW, now, now):
        for key in _keys(app_id, platform, version):
            totals[key][0] += 1
            totals[key][1] += status == "crashed"
    return [
        Sample.of("app_crash_free_sessions", round(100.0 * (1 - crashed / count), 4), now, **dict(key))
        for key, (count, crashed) in totals.items()
    ]


def _app_start(conn: sqlite3.Connection, now: float) -> list[Sample]:
    start_hour = int((now - HEALTH_WINDOW) // HOUR) * HOUR
    apps = [row[0] for row in conn.execute("SELECT DISTINCT app_id FROM analytics_last_event")]
    values: dict[_Key, list[tuple[float, int]]] = defaultdict(list)
    for app_id in apps:
        where = ReportFilter(start_hour, int(now // HOUR) * HOUR + HOUR, app=app_id)
        for version, platform, _kind, _key2, value, count in read_hist(conn, where, "app_start"):
            for key in _keys(app_id, platform, version):
                values[key].append((value, count))
    samples = []
    for key, counts in values.items():
        p95 = percentile(counts, 95)
        if p95 is not None:
            samples.append(Sample.of("app_start_time_p95_ms", p95, now, **dict(key)))
    return samples


def _event_rate(conn: sqlite3.Connection, now: float) -> list[Sample]:
    seen: dict[tuple[str, str], int] = {}
    for app in ingested_apps(conn):
        for platform, count in conn.execute(
            "SELECT coalesce(platform, ''), count(*) FROM analytics_events "
            "WHERE app_id = ? AND received_at > ? AND received_at <= ? GROUP BY platform",
            (app, now - RATE_WINDOW, now),
        ):
            seen[(app, platform)] = count
    # A platform that went quiet reports 0, so a rule on the rate can fire.
    for app_id, _version, platform, _received in conn.execute("SELECT * FROM analytics_last_event"):
        seen.setdefault((app_id, platform), 0)
    return [
        Sample.of("analytics_events_per_minute", count / (RATE_WINDOW / 60.0), now, app=app_id, platform=platform)
        for (app_id, platform), count in seen.items()
    ]


def _keys(app_id: str, platform: str, version: str) -> tuple[_Key, _Key]:
    base = (("app", app_id), ("platform", platform))
    return base, (*base, ("version", version))
