"""Analytics reads of `LocalSource`: the summary over a range and the 30-day DAU series.

Runs in the console's data loop thread, on the source's store connection. The
report code (`atlas_tui.analytics.reports.build_summary`) is looked up at call
time rather than imported at module load, so the console keeps working, and shows
the empty state, on a build whose reports module is missing or lacks that function.
`build_summary` only runs short reads, so the console keeps no read transaction open.
"""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Callable
from typing import Any

from atlas_tui.analytics.models import AnalyticsSummary
from atlas_tui.config import Config
from atlas_tui.console.analytics_models import DAU_CHART_SECONDS, EMPTY_TEXT, AnalyticsRead

__all__ = ["find_build_summary", "has_events", "read_analytics"]

_REPORTS_MODULE = "atlas_tui.analytics.reports"


def find_build_summary() -> Callable[..., Any] | None:
    """Return `build_summary` from the reports module, or None when the module or function is missing."""
    try:
        reports = importlib.import_module(_REPORTS_MODULE)
    except ModuleNotFoundError as err:
        if err.name != _REPORTS_MODULE:
            raise  # the reports module exists but one of its imports is missing: a real bug
        return None
    build = getattr(reports, "build_summary", None)
    return build if callable(build) else None


def read_analytics(conn: sqlite3.Connection, config: Config, range_seconds: float, now: float) -> AnalyticsRead:
    """Build the summary over `(now - range_seconds, now]` and the daily series of the last 30 days.

    Returns an empty read with `EMPTY_TEXT` when no analytics app is configured, the
    reports code is missing, or nothing was ever received.

    Raises:
        sqlite3.Error: a read failed.
    """
    build = find_build_summary()
    if not config.analytics.apps or build is None:
        return AnalyticsRead(range_seconds, now, None, empty_reason=EMPTY_TEXT)
    timezone = config.analytics.timezone
    summary = build(conn, start=now - range_seconds, end=now, timezone=timezone, now=now)
    if not has_events(summary):
        return AnalyticsRead(range_seconds, now, None, empty_reason=EMPTY_TEXT)
    if range_seconds >= DAU_CHART_SECONDS:
        chart_summary = summary
    else:
        chart_summary = build(conn, start=now - DAU_CHART_SECONDS, end=now, timezone=timezone, now=now)
    return AnalyticsRead(range_seconds, now, summary, daily=tuple(chart_summary.daily))


def has_events(summary: AnalyticsSummary) -> bool:
    """Return whether the summary shows any event ever received, accepted or not."""
    ingest = summary.ingest
    return bool(
        ingest.accepted or ingest.duplicate or any(ingest.rejected.values()) or ingest.last_event
        or summary.sessions.count or summary.usage.mau
    )
