"""The session part of the analytics summary, read from session rollups instead of one row per session.

`atlas_tui.analytics.reports.build_summary` calls `read_session_facts` inside its read
transaction. The whole hours of the window come from the rollups of
`storage.analytics_session_rollups` and `storage.analytics_activity`. No rollup can
represent three kinds of sessions, so they are read raw. These are the sessions in
the partial hours at the window's ends, those whose status depends on `now`
(`pending`), and, for each duration percentile, those of the one duration bucket
that contains it.

Invariants: read-only. The result equals counting every session row of the window
(`storage.sessions.session_rows`) as long as the rollups are up to date with the
sessions table, which `atlas_tui.analytics.rollups.refresh` ensures. Sessions count
in the window and on the calendar day they start in.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.analytics_activity import count_session_devices
from storage.analytics_packed import read_packed
from storage.analytics_session_rollups import (
    DURATION_BOUNDS,
    SESSION_DURATION,
    duration_bucket,
    final_session_starts,
    pending_sessions,
    read_session_hours,
    sessions_in_bucket,
)
from storage.analytics_windows import HOUR, split_hours
from storage.sessions import SessionRow, session_rows

__all__ = ["SessionFacts", "read_session_facts"]

Release = tuple[str, str]
"""`(app_version, platform)`."""


@dataclass
class SessionFacts:
    """Counts of the sessions started in a window, as the summary needs them."""

    statuses: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """`(app_version, platform, status)` → sessions."""
    per_day: Counter[date] = field(default_factory=Counter)
    """Calendar day in the report's zone → sessions started on it."""
    median_duration_s: float | None = None
    p90_duration_s: float | None = None
    devices: int = 0
    """Distinct devices (known pseudonyms only) that started a session."""
    crashed_devices: int = 0
    release_devices: dict[Release, tuple[int, int]] = field(default_factory=dict)
    """`(app_version, platform)` → (devices, devices with a crashed session)."""

    def count(self, status: str | None = None, release: Release | None = None) -> int:
        """Return the number of sessions, of one status and release when given."""
        return sum(
            count
            for (version, platform, state), count in self.statuses.items()
            if (status is None or state == status) and (release is None or release == (version, platform))
        )

    def releases(self) -> set[Release]:
        """Return the releases that started at least one session."""
        return {(version, platform) for version, platform, _ in self.statuses}


def read_session_facts(
    conn: sqlite3.Connection,
    start: float,
    end: float,
    now: float,
    zone: ZoneInfo,
    filters: Sequence[tuple[str, str]],
) -> SessionFacts:
    """Count the sessions started in `[start, end)` with their status at `now`. **Read-only.**

    Args:
        filters: `(column, value)` equality conditions on `app_id`, `app_version` and `platform`.
    """
    first_hour, end_hour, edges = _cut(start, end)
    named = {column: value for column, value in filters}
    raw: list[SessionRow] = []
    for lo, hi in edges:
        raw += session_rows(
            conn, lo, hi, now, app=named.get("app_id"), version=named.get("app_version"), platform=named.get("platform")
        )
    raw += pending_sessions(conn, first_hour, end_hour, now, filters)
    hours = read_session_hours(conn, first_hour, end_hour, filters)

    facts = SessionFacts()
    for _hour, version, platform, status, count in hours:
        facts.statuses[(version, platform, status)] += count
    for row in raw:
        facts.statuses[(row[2], row[3], row[6])] += 1
    facts.per_day = _sessions_per_day(conn, zone, start, end, hours, raw, filters)
    _add_durations(conn, facts, (first_hour, end_hour), (start, end), now, raw, filters)
    (facts.devices, facts.crashed_devices), facts.release_devices = count_session_devices(
        conn, first_hour, end_hour, edges, filters
    )
    return facts


def _cut(start: float, end: float) -> tuple[int, int, list[tuple[float, float]]]:
    """Return the whole hours `[first_hour, end_hour)` inside `[start, end)` and the partial ranges around them."""
    first_hour = int(-(-start // HOUR)) * HOUR
    end_hour = int(end // HOUR) * HOUR
    if first_hour >= end_hour:
        return first_hour, first_hour, [(start, end)]
    return first_hour, end_hour, [(lo, hi) for lo, hi in ((start, first_hour), (end_hour, end)) if lo < hi]


def _sessions_per_day(
    conn: sqlite3.Connection,
    zone: ZoneInfo,
    start: float,
    end: float,
    hours: Sequence[tuple[int, str, str, str, int]],
    raw: Sequence[SessionRow],
    filters: Sequence[tuple[str, str]],
) -> Counter[date]:
    per_day: Counter[date] = Counter(_local_day(row[4], zone) for row in raw)
    per_hour: Counter[int] = Counter()
    for hour, _version, _platform, _status, count in hours:
        per_hour[hour] += count
    # In a zone whose offset is not whole hours, midnight splits an hour, so that
    # hour's sessions are read one by one.
    split = _split_hours(zone, start, end)
    for hour, count in per_hour.items():
        if hour not in split:
            per_day[_local_day(hour, zone)] += count
    for hour in split & set(per_hour):
        for started in final_session_starts(conn, hour, hour + HOUR, filters):
            per_day[_local_day(started, zone)] += 1
    return per_day


def _split_hours(zone: ZoneInfo, start: float, end: float) -> set[int]:
    """Return the UTC hours in `[start, end)` that contain a local midnight not on the hour."""
    split: set[int] = set()
    day = _local_day(start, zone) + timedelta(days=1)
    while (midnight := datetime.combine(day, time(0), zone).timestamp()) < end:
        if midnight % HOUR:
            split.add(int(midnight // HOUR) * HOUR)
        day += timedelta(days=1)
    return split


def _add_durations(
    conn: sqlite3.Connection,
    facts: SessionFacts,
    hours: tuple[int, int],
    window: tuple[float, float],
    now: float,
    raw: Sequence[SessionRow],
    filters: Sequence[tuple[str, str]],
) -> None:
    """Set the median and p90 duration of the sessions that are not open, exactly as from their rows."""
    merged = read_packed(conn, split_hours(*hours), {SESSION_DURATION: False}, filters)
    buckets: Counter[int] = Counter()
    for counts in merged[SESSION_DURATION].values():
        buckets.update(counts)
    buckets.update(duration_bucket(row[5]) for row in raw if row[6] != "open")
    facts.median_duration_s = _bucket_percentile(conn, buckets, 50, window, now, filters)
    facts.p90_duration_s = _bucket_percentile(conn, buckets, 90, window, now, filters)


def _bucket_percentile(
    conn: sqlite3.Connection,
    buckets: Counter[int],
    p: float,
    window: tuple[float, float],
    now: float,
    filters: Sequence[tuple[str, str]],
) -> float | None:
    """Return the nearest-rank percentile: find its bucket from the counts, then its value among the bucket's rows."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100.0 * total))
    below = 0
    for bucket, count in sorted(buckets.items()):
        if below + count >= rank:
            break
        below += count
    values = sorted(sessions_in_bucket(conn, bucket, [window], now, filters))
    if not values:
        # NOTE: this happens only while a refresh has rewritten sessions but not yet
        # their rollups. The bucket's lower edge is then the closest known value.
        return max(0.0, DURATION_BOUNDS[bucket])
    return float(values[min(rank - below, len(values)) - 1])


def _local_day(ts: float, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts, zone).date()
