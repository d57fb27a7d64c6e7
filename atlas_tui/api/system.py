"""`GET /api/system/status`: version, uptime, collectors, store size and daemon state.

Scripts poll this route to check that the daemon is alive and collecting. Collector
statuses come from the running pipeline in memory, so a store that rejects writes
still shows here as `last_error` "store write failed: ..." and in
`store.last_write_error`. Store sizes come from the file system, and the daemon
state comes from the heartbeat row in the store.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from atlas_tui.api.context import ApiContext, get_context
from collectors.base import CollectorStatus
from collectors.scheduler import ScheduledStatus
from storage.status import daemon_state, read_heartbeat, store_size

__all__ = ["CollectorInfo", "DaemonInfo", "StoreInfo", "SystemStatus", "router"]

router = APIRouter(prefix="/api/system", tags=["system"])


class CollectorInfo(BaseModel):
    """The latest cycle of one collector."""

    name: str
    """Collector name, for example `system`."""
    interval: float
    """Seconds between cycles."""
    last_run: float | None
    """UTC epoch seconds when the latest cycle started; null before the first."""
    last_duration_ms: float | None
    """Wall time of the latest cycle in milliseconds."""
    last_error: str | None
    """Error of the latest cycle, or "store write failed: ..." until the store accepts
    this collector's samples again; null when both succeeded."""
    failures: int
    """Cycles that raised or timed out since the daemon started."""
    store_write_failures: int
    """Writes of this collector's samples that the store rejected since the daemon started."""
    unavailable: dict[str, str]
    """Sources skipped in the latest cycle, mapped to the reason."""


class StoreInfo(BaseModel):
    """Sizes of the store's files and its latest failed write."""

    db_bytes: int
    """Size of `atlas.db` in bytes."""
    wal_bytes: int
    """Size of `atlas.db-wal` in bytes; 0 when the file is absent."""
    last_write_error: str | None
    """Error of the latest rejected sample write of any collector; null when none
    failed since the daemon started. It stays after the store recovers."""
    last_write_error_at: float | None
    """UTC epoch seconds of that write."""


class DaemonInfo(BaseModel):
    """The daemon as its heartbeat row shows it."""

    state: Literal["running", "stale", "absent"]
    """`running` while the heartbeat is fresh, `stale` when it is older than the
    stale limit, `absent` when no heartbeat was ever written."""
    started_at: float
    """UTC epoch seconds when the serving process started."""


class SystemStatus(BaseModel):
    """Response of `GET /api/system/status`."""

    version: str
    """ATLAS version."""
    uptime_seconds: float
    """Seconds since the serving process started."""
    pid: int
    """Pid of the serving process."""
    host: str
    """Host name of the serving machine."""
    data_dir: str
    """Absolute data directory."""
    collectors: list[CollectorInfo]
    """One entry per configured collector."""
    store: StoreInfo
    """Store file sizes."""
    daemon: DaemonInfo
    """Daemon state from the heartbeat."""


@router.get("/status", response_model=SystemStatus)
def get_status(context: ApiContext = Depends(get_context)) -> SystemStatus:
    """Return the version, uptime, collector statuses, store size and daemon state."""
    now = context.clock()
    with context.read_connection() as conn:
        heartbeat = read_heartbeat(conn)
    size = store_size(context.data_dir)
    statuses = context.statuses_provider()
    failed_write = _latest_store_error(statuses)

    return SystemStatus(
        version=context.version,
        uptime_seconds=max(0.0, now - context.started_at),
        pid=context.pid,
        host=context.host,
        data_dir=str(context.data_dir),
        collectors=[_collector_info(status) for status in statuses],
        store=StoreInfo(
            db_bytes=size.db_bytes,
            wal_bytes=size.wal_bytes,
            last_write_error=failed_write.last_store_error if failed_write else None,
            last_write_error_at=failed_write.last_store_error_at if failed_write else None,
        ),
        daemon=DaemonInfo(
            state=daemon_state(heartbeat, now, context.stale_after),
            started_at=context.started_at,
        ),
    )


def _collector_info(status: CollectorStatus) -> CollectorInfo:
    return CollectorInfo(
        name=status.name,
        interval=status.interval,
        last_run=status.last_run,
        last_duration_ms=status.last_duration_ms,
        last_error=status.last_error,
        failures=status.failures,
        store_write_failures=status.store_write_failures if isinstance(status, ScheduledStatus) else 0,
        unavailable=dict(status.unavailable),
    )


def _latest_store_error(statuses: list[CollectorStatus]) -> ScheduledStatus | None:
    """Return the status whose sink failed most recently, or None when no write failed."""
    failed = [
        status
        for status in statuses
        if isinstance(status, ScheduledStatus) and status.last_store_error_at is not None
    ]
    return max(failed, key=lambda status: status.last_store_error_at or 0.0, default=None)
