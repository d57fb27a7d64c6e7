"""`GET /api/system/status`: version, uptime, collectors, store size and daemon state.

Scripts poll this route to check that the daemon is alive and collecting. Collector
statuses come from the running pipeline in memory. Store sizes come from the file
system, and the daemon state comes from the heartbeat row in the store.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from atlas_tui.api.context import ApiContext, get_context
from collectors.base import CollectorStatus
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
    """Error of the latest cycle; null when it succeeded."""
    failures: int
    """Cycles that raised or timed out since the daemon started."""
    unavailable: dict[str, str]
    """Sources skipped in the latest cycle, mapped to the reason."""


class StoreInfo(BaseModel):
    """Sizes of the store's files."""

    db_bytes: int
    """Size of `atlas.db` in bytes."""
    wal_bytes: int
    """Size of `atlas.db-wal` in bytes; 0 when the file is absent."""


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

    return SystemStatus(
        version=context.version,
        uptime_seconds=max(0.0, now - context.started_at),
        pid=context.pid,
        host=context.host,
        data_dir=str(context.data_dir),
        collectors=[_collector_info(status) for status in context.statuses_provider()],
        store=StoreInfo(db_bytes=size.db_bytes, wal_bytes=size.wal_bytes),
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
        unavailable=dict(status.unavailable),
    )
