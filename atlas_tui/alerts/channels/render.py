"""Channel-neutral text for notices: headlines, field lines, times and values.

Slack, email and the webhook bodies all describe a notice with the same words, so an
operator reading two channels sees the same facts. Functions here return plain,
unescaped text; each channel escapes for its own format (mrkdwn, HTML).
Times are UTC epoch seconds in and UTC text out.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

from atlas_tui.alerts.channels.message import Notice, NoticeGroup, NoticeKind

__all__ = [
    "KIND_LABELS",
    "detail_lines",
    "format_rfc3339",
    "format_time",
    "format_value",
    "headline",
    "instance_of",
    "top_severity",
]

KIND_LABELS: dict[NoticeKind, str] = {
    "firing": "FIRING",
    "resolved": "RESOLVED",
    "repeat": "STILL FIRING",
    "acknowledge": "ACKNOWLEDGED",
    "test": "TEST",
}
"""Upper-case tag of each notice kind, as it appears in subjects and headers."""

_SEVERITY_ORDER = ("info", "warning", "error", "critical")
# Labels that repeat the headline, so they do not identify the instance.
_GENERIC_LABELS = frozenset({"alertname", "severity"})


def headline(group: NoticeGroup) -> str:
    """Build the one-line summary used as Slack `text` and email subject.

    One notice gives `[FIRING] High CPU on atlas-01 (critical)`; several give
    `[FIRING:3] High CPU (critical)`, or `[FIRING:2 RESOLVED:1] 3 alerts` when kinds
    or rules differ. A test notice is `[TEST] <its title>`.
    """
    first = group.notices[0]
    if group.is_test:
        return f"[TEST] {first.title}"
    if len(group.notices) == 1:
        instance = instance_of(first)
        where = f" on {instance}" if instance else ""
        return f"[{KIND_LABELS[first.kind]}] {first.title}{where} ({first.severity})"
    return f"[{_kind_counts(group)}] {_group_title(group)} ({top_severity(group)})"


def detail_lines(notice: Notice) -> list[tuple[str, str]]:
    """List the facts about one notice as (field name, text) pairs, in reading order."""
    lines: list[tuple[str, str]] = []
    instance = instance_of(notice)
    if instance:
        lines.append(("Host" if "host" in notice.labels else "Instance", instance))
    if notice.value is not None:
        lines.append(("Value", format_value(notice.value)))
    lines.append(("Since", format_time(notice.starts_at)))
    if notice.ends_at is not None:
        lines.append(("Ended", format_time(notice.ends_at)))
    if notice.ack is not None:
        ack = notice.ack
        text = f"by {ack.by} at {format_time(ack.at)}" + (f": {ack.message}" if ack.message else "")
        lines.append(("Acknowledged", text))
    if notice.annotations.summary:
        lines.append(("Summary", notice.annotations.summary))
    if notice.labels:
        lines.append(("Labels", ", ".join(f"{k}={v}" for k, v in sorted(notice.labels.items()))))
    if notice.annotations.runbook_url:
        lines.append(("Runbook", notice.annotations.runbook_url))
    if notice.note:
        lines.append(("Note", notice.note))
    return lines


def instance_of(notice: Notice) -> str:
    """Name the alert instance: its `host` label, else its other labels as `k=v`, else ''."""
    if "host" in notice.labels:
        return notice.labels["host"]
    specific = sorted((k, v) for k, v in notice.labels.items() if k not in _GENERIC_LABELS)
    return ", ".join(f"{k}={v}" for k, v in specific)


def top_severity(group: NoticeGroup) -> str:
    """Return the highest severity among the group's notices."""
    return max((notice.severity for notice in group.notices), key=_SEVERITY_ORDER.index)


def format_time(ts: float) -> str:
    """Format epoch seconds as `2025-01-14 09:12 UTC`."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_rfc3339(ts: float) -> str:
    """Format epoch seconds as RFC 3339 UTC (`2025-01-14T09:12:00Z`), with milliseconds when present."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    if moment.microsecond == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_value(value: float) -> str:
    """Format a metric value: six significant digits, or whole numbers from one million up."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e6:
        return f"{value:,.0f}"
    return f"{value:.6g}"


def _kind_counts(group: NoticeGroup) -> str:
    counts = Counter(notice.kind for notice in group.notices)
    return " ".join(f"{KIND_LABELS[kind]}:{count}" for kind, count in counts.items())


def _group_title(group: NoticeGroup) -> str:
    titles = {notice.title for notice in group.notices}
    if len(titles) == 1:
        return titles.pop()
    return f"{len(group.notices)} alerts"
