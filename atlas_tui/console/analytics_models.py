"""Data the console's data loop reads for the Analytics pane: the report ranges and `AnalyticsRead`.

`ConsoleSource.analytics` returns an `AnalyticsRead` for the range the pane asked
for; `console.analytics_presentation` turns it into text for the widgets. The
summary itself is the shared `atlas_tui.analytics.models.AnalyticsSummary`, so the
pane shows the same numbers as `GET /api/analytics` and `atlas analytics summary`.
Nothing here imports Textual.
"""

from __future__ import annotations

from dataclasses import dataclass

from atlas_tui.analytics.models import AnalyticsSummary, DailyRow

__all__ = ["ANALYTICS_RANGES", "DAU_CHART_SECONDS", "EMPTY_TEXT", "AnalyticsRange", "AnalyticsRead", "step_range"]

EMPTY_TEXT = "no analytics data yet — configure analytics.apps and point the SDK at POST /api/analytics/events"
"""Notice the pane shows while there is nothing to report."""

DAU_CHART_SECONDS = 30 * 86400.0
"""Span of the daily active devices chart, whatever range the tables show."""


@dataclass(frozen=True, slots=True)
class AnalyticsRange:
    """One selectable report range, ending at `now`."""

    label: str
    """Short name in the range bar, for example `7d`."""
    seconds: float
    """Width of the range in seconds."""


ANALYTICS_RANGES: tuple[AnalyticsRange, ...] = (
    AnalyticsRange("24h", 86400.0),
    AnalyticsRange("7d", 7 * 86400.0),
    AnalyticsRange("30d", 30 * 86400.0),
)
"""Ranges in the order `t` cycles through them; the first is the default."""


@dataclass(frozen=True, slots=True)
class AnalyticsRead:
    """One read of the analytics reports for the pane."""

    range_seconds: float
    """Width of the range the summary covers, ending at `now`."""
    now: float
    """UTC epoch seconds the read was made for."""
    summary: AnalyticsSummary | None
    """The report over the range; None when there is nothing to report (see `empty_reason`)."""
    daily: tuple[DailyRow, ...] = ()
    """Active devices per day over the last `DAU_CHART_SECONDS`, oldest first, for the chart."""
    empty_reason: str | None = None
    """Reason `summary` is None, shown in place of the pane's sections."""


def step_range(current: AnalyticsRange, steps: int) -> AnalyticsRange:
    """Return the range `steps` places after `current` in `ANALYTICS_RANGES`, wrapping around."""
    index = ANALYTICS_RANGES.index(current)
    return ANALYTICS_RANGES[(index + steps) % len(ANALYTICS_RANGES)]
