"""Retention rules: the period, keep_daily/weekly/monthly and the newest successful snapshot."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from atlas_tui.backup.models import RetentionPolicy, SnapshotSummary
from atlas_tui.backup.retention import select_kept

DAY = 86400.0
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc).timestamp()


def summary(moment: float, status: str = "ok") -> SnapshotSummary:
    return SnapshotSummary(
        id=f"backup_{int(moment)}_scheduled", time=moment, trigger="scheduled", hostname="node", status=status
    )


def daily_history(days: int) -> list[SnapshotSummary]:
    """Two snapshots a day (03:00 and 15:00 UTC) for `days` days before NOW."""
    start = datetime(2026, 3, 15, tzinfo=timezone.utc).timestamp() - days * DAY
    return [summary(start + day * DAY + hour * 3600) for day in range(days) for hour in (3, 15)]


def test_period_keeps_recent() -> None:
    """Snapshots inside the period stay, older ones go, whatever their status."""
    history = [summary(NOW - 10 * DAY), summary(NOW - 2 * DAY, "partial"), summary(NOW - 3600)]

    keep_rules = select_kept(history, RetentionPolicy(period=7 * DAY), now=NOW)

    assert sorted(keep_rules) == sorted([history[1].id, history[2].id])
    assert keep_rules[history[1].id] == ["period"]
    assert keep_rules[history[2].id] == ["period", "newest"]


def test_newest_success_always_kept() -> None:
    """With every snapshot outside the period the newest ok one stays, not a newer partial one."""
    history = [summary(NOW - 40 * DAY), summary(NOW - 30 * DAY), summary(NOW - 20 * DAY, "partial")]

    keep_rules = select_kept(history, RetentionPolicy(period=DAY), now=NOW)

    assert keep_rules == {history[1].id: ["newest"]}


def test_keep_daily_newest_per_day() -> None:
    """keep_daily=3 keeps the 15:00 snapshot of each of the 3 most recent days."""
    history = daily_history(10)

    keep_rules = select_kept(history, RetentionPolicy(period=1, keep_daily=3), now=NOW)

    expected = {item.id for item in history[-6:] if item.time % DAY == 15 * 3600}
    assert set(keep_rules) == expected
    assert all("daily" in rules for rules in keep_rules.values())


def test_keep_daily_counts_days_with_snapshots() -> None:
    """Days without a snapshot do not use up the count."""
    history = [summary(NOW - 30 * DAY), summary(NOW - 20 * DAY), summary(NOW - 10 * DAY)]

    keep_rules = select_kept(history, RetentionPolicy(period=1, keep_daily=2), now=NOW)

    assert set(keep_rules) == {history[1].id, history[2].id}


def test_keep_daily_ignores_partial() -> None:
    """A partial snapshot does not stand for its day; the day's newest ok snapshot does."""
    ok = summary(NOW - 5 * DAY)
    partial = summary(NOW - 5 * DAY + 60, "partial")

    keep_rules = select_kept([ok, partial], RetentionPolicy(period=1, keep_daily=1), now=NOW)

    assert set(keep_rules) == {ok.id}


@pytest.mark.parametrize(
    ("policy", "expected_count"),
    [
        (RetentionPolicy(period=1, keep_weekly=2), 2),
        (RetentionPolicy(period=1, keep_monthly=2), 2),
        (RetentionPolicy(period=1, keep_weekly=100), 9),
        # 14 March 2026 is a Saturday: the weekly picks of 14 and 8 March are daily picks already.
        (RetentionPolicy(period=1, keep_daily=7, keep_weekly=4), 7 + 2),
    ],
)
def test_weekly_and_monthly_buckets(policy: RetentionPolicy, expected_count: int) -> None:
    """Weekly and monthly rules keep one snapshot per ISO week or month and combine with daily."""
    history = daily_history(60)

    keep_rules = select_kept(history, policy, now=NOW)

    assert len(keep_rules) == expected_count


def test_empty_history() -> None:
    """No snapshots keep nothing and raise nothing."""
    assert select_kept([], RetentionPolicy(period=DAY), now=NOW) == {}
