"""Backup metrics from the run records: age of the last successful backup and last status per set.

The schedule (`atlas_tui.backup.service`) writes these samples with
`storage.metrics.write_samples` on every cycle and after every run, so an alert
rule such as `backup_last_success_age_hours > 26` fires through the alert engine
like any collector metric. Only configured sets get samples.

| metric | labels | value |
|---|---|---|
| `backup_last_success_age_hours` | `backup_set` | hours since the start of the newest `ok` backup of the set |
| `backup_last_status` | `backup_set` | newest finished backup of the set: 0 ok, 1 partial, 2 failed, 3 never ran |
| `backup_test_restore_status` | | newest scheduled test restore: 0 ok, 1 partial, 2 failed, 3 never ran |

A set that never succeeded reports its age from its first recorded run, so a set
whose every run fails still crosses an age threshold. A set that never ran has no
age sample, only `backup_last_status` 3.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from collectors.base import Sample
from storage.backup_runs import (
    RunState,
    first_run_by_set,
    last_finished_by_set,
    last_success_by_set,
    recent_runs,
)

__all__ = ["AGE_METRIC", "METRICS", "NEVER", "STATUS_CODES", "STATUS_METRIC", "TEST_RESTORE_METRIC", "backup_samples"]

AGE_METRIC = "backup_last_success_age_hours"
STATUS_METRIC = "backup_last_status"
TEST_RESTORE_METRIC = "backup_test_restore_status"
METRICS = frozenset({AGE_METRIC, STATUS_METRIC, TEST_RESTORE_METRIC})
"""Every metric name this module writes."""

STATUS_CODES: dict[RunState, float] = {"ok": 0.0, "partial": 1.0, "failed": 2.0}
"""Value of `backup_last_status` and `backup_test_restore_status` per run status."""
NEVER = 3.0
"""Value of the status metrics when no run finished yet."""


def backup_samples(
    conn: sqlite3.Connection, set_names: Iterable[str], *, repository: str, now: float
) -> list[Sample]:
    """Return the backup metrics of `set_names` in `repository` at `now`.

    **Read-only**, four statements.
    """
    finished = last_finished_by_set(conn, repository=repository)
    success = last_success_by_set(conn, repository=repository)
    first = first_run_by_set(conn, repository=repository)
    samples = []
    for name in set_names:
        last = finished.get(name)
        samples.append(Sample.of(STATUS_METRIC, STATUS_CODES[last.status] if last else NEVER, now, backup_set=name))
        since = success[name].started if name in success else first.get(name)
        if since is not None:
            samples.append(Sample.of(AGE_METRIC, max(now - since, 0.0) / 3600.0, now, backup_set=name))
    samples.append(Sample.of(TEST_RESTORE_METRIC, _test_restore_code(conn, repository), now))
    return samples


def _test_restore_code(conn: sqlite3.Connection, repository: str) -> float:
    for run in recent_runs(conn, 5, "test_restore", repository=repository):
        if run.status != "running":
            return STATUS_CODES[run.status]
    return NEVER
