"""Retention: decide which snapshots `cleanup` keeps, from their summaries and `now`.

A pure function over `SnapshotSummary` records, so the rules are tested without a
repository or a clock. `pruner.cleanup` calls it, deletes the manifests it does not
keep and then prunes the data. Rules, each keeping a snapshot on its own:

- `period`: taken at or after `now - policy.period`, whatever its status;
- `daily`, `weekly`, `monthly`: the newest successful (`ok`) snapshot of each of
  the N most recent UTC days, ISO weeks or calendar months that have one;
- `newest`: the newest successful snapshot is always kept.

Only the period rule keeps a partial snapshot, because a partial run does not
count as a successful backup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone

from atlas_tui.backup.models import RetentionPolicy, SnapshotSummary

__all__ = ["select_kept"]


def select_kept(
    snapshots: Iterable[SnapshotSummary], policy: RetentionPolicy, *, now: float
) -> dict[str, list[str]]:
    """Return each kept snapshot id with the rules that keep it; ids left out are to be removed."""
    ordered = sorted(snapshots, key=lambda item: (item.time, item.id), reverse=True)
    successful = [item for item in ordered if item.status == "ok"]
    keep_rules: dict[str, list[str]] = {}

    for item in ordered:
        if item.time >= now - policy.period:
            keep_rules.setdefault(item.id, []).append("period")
    buckets: list[tuple[str, int, Callable[[datetime], object]]] = [
        ("daily", policy.keep_daily, lambda moment: moment.date()),
        ("weekly", policy.keep_weekly, lambda moment: moment.isocalendar()[:2]),
        ("monthly", policy.keep_monthly, lambda moment: (moment.year, moment.month)),
    ]
    for rule, count, bucket_of in buckets:
        for snapshot_id in _newest_per_bucket(successful, count, bucket_of):
            keep_rules.setdefault(snapshot_id, []).append(rule)
    if successful:
        keep_rules.setdefault(successful[0].id, []).append("newest")
    return keep_rules


def _newest_per_bucket(
    newest_first: list[SnapshotSummary], count: int, bucket_of: Callable[[datetime], object]
) -> list[str]:
    chosen: list[str] = []
    seen: set[object] = set()
    for item in newest_first:
        if len(seen) >= count:
            break
        bucket = bucket_of(datetime.fromtimestamp(item.time, tz=timezone.utc))
        if bucket not in seen:
            seen.add(bucket)
            chosen.append(item.id)
    return chosen
