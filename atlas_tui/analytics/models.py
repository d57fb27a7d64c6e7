"""The analytics summary: one pydantic model shared by the API, the CLI and the console.

`reports.build_summary` fills an `AnalyticsSummary` from the hourly rollups, the
sessions table and the ingest counters. `GET /api/analytics`, `atlas analytics
summary --json` and the console's Analytics pane all show this one shape, so a number
means the same thing everywhere.

Invariants: times are UTC epoch seconds, and `daily[].day` is a calendar day in
`window.timezone`. Percentages are 0–100, and `None` when there is nothing to divide
by. Durations are in seconds and latencies in milliseconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = [
    "AnalyticsSummary",
    "AppStartRow",
    "CrashFree",
    "DailyRow",
    "Errors",
    "Filters",
    "IngestStats",
    "InteractionRow",
    "LastEvent",
    "NetworkRow",
    "ReleaseRow",
    "ScreenRow",
    "SessionStats",
    "TransactionRow",
    "Usage",
    "Window",
]


class Window(BaseModel):
    """The reported time range, `[start, end)`, and the zone its days are cut in."""

    start: float
    end: float
    timezone: str


class Filters(BaseModel):
    """The app, version and platform the summary is restricted to (`None` = all)."""

    app: str | None = None
    version: str | None = None
    platform: str | None = None


class Usage(BaseModel):
    """Distinct active devices in the rolling day, week and month ending at `window.end`."""

    dau: int
    wau: int
    mau: int
    stickiness: float | None
    """DAU / MAU as a fraction (0–1); `None` when MAU is zero."""


class DailyRow(BaseModel):
    """Active devices and sessions started on one calendar day in the report's zone."""

    day: str
    active_devices: int
    sessions: int


class SessionStats(BaseModel):
    """Sessions started in the window, by how they ended."""

    count: int
    median_duration_s: float | None
    p90_duration_s: float | None
    per_device: float | None
    crashed: int
    abnormal: int
    errored: int


class CrashFree(BaseModel):
    """Crash-free sessions (1 − crashed / sessions) and users (1 − devices with a crash / devices), in percent."""

    sessions_pct: float | None
    users_pct: float | None


class ReleaseRow(BaseModel):
    """Health of one app version on one platform."""

    version: str
    platform: str
    sessions: int
    crash_free_sessions_pct: float | None
    crash_free_users_pct: float | None
    app_start_p95_ms: float | None


class ScreenRow(BaseModel):
    """One screen: views, distinct devices and median time on screen (capped at 30 min)."""

    screen: str
    views: int
    devices: int
    median_time_s: float | None


class InteractionRow(BaseModel):
    """How often one element received one action."""

    element: str
    action: str
    count: int


class TransactionRow(BaseModel):
    """Transactions of one type in one asset."""

    type: str
    asset: str
    count: int
    volume: float


class AppStartRow(BaseModel):
    """App start time percentiles for one version, platform and start kind."""

    version: str
    platform: str
    start: Literal["cold", "warm"]
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class NetworkRow(BaseModel):
    """Request latency and success rate for one method and normalised route."""

    method: str
    route: str
    count: int
    p50_ms: float | None
    p95_ms: float | None
    success_pct: float | None


class Errors(BaseModel):
    """Error events in the window: all, fatal and handled."""

    count: int
    fatal: int
    handled: int


class LastEvent(BaseModel):
    """When the daemon last received an event from one app, version and platform."""

    app: str
    version: str
    platform: str
    received_at: float


class IngestStats(BaseModel):
    """Ingest health: event rate, outcomes by kind, clock skew and lateness."""

    events_per_minute: float
    accepted: int
    duplicate: int
    rejected: dict[str, int]
    median_skew_s: float | None
    max_lateness_s: float | None
    last_event: list[LastEvent]


class AnalyticsSummary(BaseModel):
    """Everything the analytics reports show, for one window and filter."""

    window: Window
    filters: Filters
    usage: Usage
    daily: list[DailyRow]
    sessions: SessionStats
    crash_free: CrashFree
    by_release: list[ReleaseRow]
    top_screens: list[ScreenRow]
    interactions: list[InteractionRow]
    transactions: list[TransactionRow]
    app_start: list[AppStartRow]
    network: list[NetworkRow]
    errors: Errors
    ingest: IngestStats
