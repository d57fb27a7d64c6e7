"""A filled `AnalyticsSummary` for the Analytics pane's tests, built from fixed numbers."""

from __future__ import annotations

from atlas_tui.analytics.models import (
    AnalyticsSummary,
    CrashFree,
    DailyRow,
    Errors,
    Filters,
    IngestStats,
    LastEvent,
    ReleaseRow,
    ScreenRow,
    SessionStats,
    TransactionRow,
    Usage,
    Window,
)
from tests.console.fake_source import NOW

LONG_SCREEN = "settings/security/recovery-phrase-backup-confirmation"
"""A screen name longer than its column, to check the ellipsis."""


def sample_summary(now: float = NOW) -> AnalyticsSummary:
    """Return a summary with two releases, three screens, two assets and two rejection reasons."""
    return AnalyticsSummary(
        window=Window(start=now - 86400, end=now, timezone="UTC"),
        filters=Filters(),
        usage=Usage(dau=120, wau=340, mau=800, stickiness=0.15),
        daily=[DailyRow(day=f"2025-06-{day:02d}", active_devices=90 + day, sessions=300 + day) for day in range(1, 16)],
        sessions=SessionStats(
            count=1234, median_duration_s=95.0, p90_duration_s=400.0, per_device=2.5, crashed=12, abnormal=3, errored=7
        ),
        crash_free=CrashFree(sessions_pct=99.1, users_pct=97.6),
        by_release=[
            ReleaseRow(version="2.3.0", platform="ios", sessions=800, crash_free_sessions_pct=99.7,
                       crash_free_users_pct=99.2, app_start_p95_ms=820.0),
            ReleaseRow(version="2.2.0", platform="android", sessions=434, crash_free_sessions_pct=97.2,
                       crash_free_users_pct=95.0, app_start_p95_ms=1430.0),
        ],
        top_screens=[
            ScreenRow(screen="home", views=5400, devices=118, median_time_s=42.0),
            ScreenRow(screen="send", views=1200, devices=80, median_time_s=65.0),
            ScreenRow(screen=LONG_SCREEN, views=40, devices=12, median_time_s=None),
        ],
        interactions=[],
        transactions=[
            TransactionRow(type="send", asset="BTC", count=40, volume=1.25),
            TransactionRow(type="receive", asset="BTC", count=10, volume=0.5),
            TransactionRow(type="send", asset="ETH", count=22, volume=14.5),
        ],
        app_start=[],
        network=[],
        errors=Errors(count=30, fatal=12, handled=18),
        ingest=IngestStats(
            events_per_minute=312.5,
            accepted=45_000,
            duplicate=410,
            rejected={"too_old": 3, "missing_event_id": 5},
            median_skew_s=1.5,
            max_lateness_s=7200.0,
            last_event=[
                LastEvent(app="atlas-wallet", version="2.3.0", platform="ios", received_at=now - 12),
                LastEvent(app="atlas-wallet", version="2.2.0", platform="android", received_at=now - 3600),
            ],
        ),
    )
