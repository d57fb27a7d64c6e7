"""Repository overview for `status`: the last run of each backup set, size and snapshot count.

Read-only and lock-free. The per-set history comes from the snapshot manifests,
because failed runs write no snapshot: a set whose last run failed shows its last
snapshot, and `last_success` names its newest complete copy. A snapshot file that
cannot be read is listed in `damaged_snapshots` and left out of the history.
"""

from __future__ import annotations

from atlas_tui.backup.models import SetStatus, StatusResult
from atlas_tui.backup.repository import Repository

__all__ = ["repository_status"]


def repository_status(repository: Repository) -> StatusResult:
    """Read every snapshot manifest and summarise the repository."""
    snapshots, damaged = repository.load_summaries()
    sets: dict[str, SetStatus] = {}
    for snapshot in snapshots:
        for item in snapshot.sets:
            previous = sets.get(item.name)
            current = SetStatus(
                name=item.name, last_run=snapshot.id, last_run_time=snapshot.time,
                last_status=item.status, bytes=item.bytes,
            )
            if previous is not None:
                current.last_success, current.last_success_time = previous.last_success, previous.last_success_time
            if item.status == "ok":
                current.last_success, current.last_success_time = snapshot.id, snapshot.time
            sets[item.name] = current
    return StatusResult(
        repository=str(repository.path),
        snapshots=len(snapshots) + len(damaged),
        size_bytes=repository.size_bytes(),
        sets=sorted(sets.values(), key=lambda item: item.name),
        damaged_snapshots=damaged,
    )
