"""Display models for the Analytics pane: text lines with a status, and the DAU chart's axes.

The pane calls these pure functions on the UI thread with each `AnalyticsRead`.
Columns are padded and cut here with `…` to fixed cell widths (`pad_cells`). Every
name that came from an app (versions, screens, assets, rejection reasons) passes
through `printable` first, so an SDK cannot move the cursor or break the layout. Whole lines are also cut with `…` by the widgets when the pane is narrower
than a line. Status thresholds live here, not in the widgets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from atlas_tui.analytics.models import AnalyticsSummary, DailyRow, LastEvent, ReleaseRow, TransactionRow
from atlas_tui.console.analytics_models import AnalyticsRead
from atlas_tui.console.formatting import format_age, format_duration_short, format_axis_value, pad_cells, printable

__all__ = [
    "CRASH_FREE_OK",
    "CRASH_FREE_WARNING",
    "SECTION_ROWS",
    "STALE_INGEST_AFTER",
    "DauChartView",
    "LineStatus",
    "SectionView",
    "StatusLine",
    "dau_chart_view",
    "ingest_section",
    "release_section",
    "screen_section",
    "transaction_section",
    "usage_line",
]

LineStatus = Literal["ok", "warning", "critical", "stale", "plain"]
"""Colour class of a line; `plain` uses the normal text colour."""

SECTION_ROWS = 5
"""Rows listed per section (releases, screens, assets, last events); the rest is counted."""

CRASH_FREE_OK = 99.5
"""Crash-free sessions in percent at or above which a release is `ok`."""

CRASH_FREE_WARNING = 98.0
"""Crash-free sessions in percent at or above which a release is `warning`; below is `critical`."""

STALE_INGEST_AFTER = 30 * 60.0
"""Seconds without events from a version and platform after which its line is `warning`."""

_MISSING = "—"


@dataclass(frozen=True, slots=True)
class StatusLine:
    """One line of a section, ready to print."""

    text: str
    """The line; names inside it are already cut to their column width."""
    status: LineStatus = "plain"
    """Colour of the line."""


@dataclass(frozen=True, slots=True)
class SectionView:
    """One titled block of the pane."""

    title: str
    """Bold first line, for example `Releases`."""
    lines: tuple[StatusLine, ...]
    """Lines under the title; a single muted line when there is no data."""


@dataclass(frozen=True, slots=True)
class DauChartView:
    """The daily active devices chart: one point per day at x = the day's index."""

    title: str
    """Heading above the chart, with the newest day's count."""
    xs: tuple[float, ...]
    """Day index from 0 (oldest)."""
    ys: tuple[float, ...]
    """Active devices that day."""
    x_ticks: tuple[tuple[float, str], ...]
    """Labelled x ticks: position and `MM-DD`."""
    y_range: tuple[float, float]
    """Bottom and top of the y axis."""
    y_ticks: tuple[tuple[float, str], ...]
    """Labelled y ticks."""


def usage_line(summary: AnalyticsSummary) -> StatusLine:
    """Build the headline: DAU, WAU, MAU, stickiness, sessions and crash-free rates."""
    usage = summary.usage
    crash_free = summary.crash_free
    parts = [
        f"DAU {usage.dau:,}",
        f"WAU {usage.wau:,}",
        f"MAU {usage.mau:,}",
        f"sticky {_percent(None if usage.stickiness is None else usage.stickiness * 100)}",
        f"sessions {summary.sessions.count:,}",
        f"crash-free {_percent(crash_free.sessions_pct)} sessions, {_percent(crash_free.users_pct)} users",
    ]
    return StatusLine(" · ".join(parts))


def release_section(summary: AnalyticsSummary) -> SectionView:
    """Build the per-release table: crash-free sessions and users, and app start p95."""
    header = StatusLine(f"{pad_cells('version', 14)} {'sess':>6} {'users':>6} {'p95':>7}", "stale")
    rows = sorted(summary.by_release, key=lambda row: (-row.sessions, row.version, row.platform))
    lines = [_release_line(row) for row in rows[:SECTION_ROWS]]
    if not lines:
        return _empty("Crash-free · app start")
    return SectionView("Crash-free · app start", (header, *lines, *_more(len(rows))))


def screen_section(summary: AnalyticsSummary) -> SectionView:
    """Build the top screens table: views, devices and median time on screen."""
    rows = summary.top_screens[:SECTION_ROWS]
    lines = [
        StatusLine(
            f"{pad_cells(printable(row.screen), 14)} {_count(row.views):>6} {_count(row.devices):>5} "
            f"{_seconds(row.median_time_s):>6}"
        )
        for row in rows
    ]
    if not lines:
        return _empty("Top screens")
    header = StatusLine(f"{pad_cells('screen', 14)} {'views':>6} {'devs':>5} {'median':>6}", "stale")
    return SectionView("Top screens", (header, *lines, *_more(len(summary.top_screens))))


def transaction_section(summary: AnalyticsSummary) -> SectionView:
    """Build the transaction volume by asset, all transaction types added up."""
    assets = _by_asset(summary.transactions)
    lines = [
        StatusLine(f"{pad_cells(printable(asset), 8)} {_volume(volume):>14} {count:>7,} tx")
        for asset, volume, count in assets[:SECTION_ROWS]
    ]
    if not lines:
        return _empty("Transactions by asset")
    return SectionView("Transactions by asset", (*lines, *_more(len(assets))))


def ingest_section(summary: AnalyticsSummary, now: float) -> SectionView:
    """Build the ingest view: rate, outcomes, rejections by reason, skew, lateness and last events."""
    ingest = summary.ingest
    rejected_total = sum(ingest.rejected.values())
    lines = [
        StatusLine(f"{ingest.events_per_minute:,.1f} events/min · {ingest.accepted:,} accepted"),
        StatusLine(
            f"{ingest.duplicate:,} duplicate · {rejected_total:,} rejected",
            "warning" if rejected_total else "plain",
        ),
    ]
    if ingest.rejected:
        reasons = sorted(ingest.rejected.items(), key=lambda item: (-item[1], item[0]))
        text = ", ".join(f"{printable(reason)} {count:,}" for reason, count in reasons)
        lines.append(StatusLine(f"  {text}", "warning"))
    lines.append(
        StatusLine(f"skew median {_duration(ingest.median_skew_s)} · lateness max {_duration(ingest.max_lateness_s)}")
    )
    newest = sorted(ingest.last_event, key=lambda event: (-event.received_at, event.app, event.version, event.platform))
    # With one app, its name on every line would only push the ages off narrow screens.
    show_app = len({event.app for event in newest}) > 1
    lines.extend(_last_event_line(event, now, show_app) for event in newest[:SECTION_ROWS])
    lines.extend(_more(len(newest)))
    return SectionView("Ingest", tuple(lines))


def dau_chart_view(read: AnalyticsRead) -> DauChartView:
    """Build the chart of active devices per day from the read's 30-day series."""
    days: list[DailyRow] = sorted(read.daily, key=lambda row: row.day)
    xs = tuple(float(index) for index in range(len(days)))
    ys = tuple(float(row.active_devices) for row in days)
    top = _nice_top(max(ys, default=0.0))
    tick_indexes = sorted({0, len(days) // 2, len(days) - 1}) if days else []
    title = "Daily active devices, 30 days"
    if days:
        title += f" · {days[-1].day} {days[-1].active_devices:,}"
    return DauChartView(
        title=title,
        xs=xs,
        ys=ys,
        x_ticks=tuple((float(index), days[index].day[5:]) for index in tick_indexes),
        y_range=(0.0, top),
        y_ticks=((0.0, "0"), (top / 2, format_axis_value(top / 2, "count")), (top, format_axis_value(top, "count"))),
    )


def _release_line(row: ReleaseRow) -> StatusLine:
    name = pad_cells(f"{printable(row.version)} {printable(row.platform)}", 14)
    text = (
        f"{name} {_percent(row.crash_free_sessions_pct):>6} {_percent(row.crash_free_users_pct):>6} "
        f"{_milliseconds(row.app_start_p95_ms):>7}"
    )
    return StatusLine(text, _crash_free_status(row.crash_free_sessions_pct))


def _last_event_line(event: LastEvent, now: float, show_app: bool) -> StatusLine:
    text = f"{printable(event.version)} {printable(event.platform)}"
    name = pad_cells(f"{printable(event.app)} {text}" if show_app else text, 24 if show_app else 16)
    age = now - event.received_at
    return StatusLine(f"{name} {format_age(age)}", "warning" if age > STALE_INGEST_AFTER else "plain")


def _by_asset(rows: Iterable[TransactionRow]) -> list[tuple[str, float, int]]:
    volume: defaultdict[str, float] = defaultdict(float)
    count: defaultdict[str, int] = defaultdict(int)
    for row in rows:
        volume[row.asset] += row.volume
        count[row.asset] += row.count
    return sorted(((asset, volume[asset], count[asset]) for asset in volume), key=lambda item: (-item[2], item[0]))


def _crash_free_status(pct: float | None) -> LineStatus:
    if pct is None:
        return "stale"
    if pct >= CRASH_FREE_OK:
        return "ok"
    return "warning" if pct >= CRASH_FREE_WARNING else "critical"


def _empty(title: str) -> SectionView:
    return SectionView(title, (StatusLine("no data in this range", "stale"),))


def _more(total: int) -> list[StatusLine]:
    hidden = total - SECTION_ROWS
    return [StatusLine(f"… {hidden} more", "stale")] if hidden > 0 else []


def _percent(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.1f}%"


def _milliseconds(value: float | None) -> str:
    return _MISSING if value is None else f"{value:,.0f}ms"


def _seconds(value: float | None) -> str:
    return _MISSING if value is None else format_duration_short(value)


def _duration(value: float | None) -> str:
    if value is None:
        return _MISSING
    # Skew may be negative (a device clock behind the server); its size is what matters here.
    sign = "-" if value < 0 else ""
    return sign + format_duration_short(abs(value))


def _count(value: int) -> str:
    return format_axis_value(value, "count") if value >= 100_000 else f"{value:,}"


def _volume(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4f}"


def _nice_top(value: float) -> float:
    """Return a round axis top at or above `value`: 1, 2 or 5 times a power of ten, at least 10."""
    top = 10.0
    while top < value:
        for factor in (2.0, 2.5, 2.0):
            top *= factor
            if top >= value:
                break
    return top
