"""`GET /api/system/status`: version, uptime, collectors, store, channels, backups and daemon state.

Scripts poll this route to check that the daemon is alive and collecting. Collector
statuses come from the running pipeline in memory, so a store that rejects writes
still shows here as `last_error` "store write failed: ..." and in
`store.last_write_error`. Store sizes come from the file system, and the daemon
state comes from the heartbeat row in the store. Channel health comes from the
store's `channel_health` rows, joined with the channels the config names, and the
alert engine's health from the state the engine stores after each evaluation.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from atlas_tui.api.alerts import get_config
from atlas_tui.api.context import ApiContext, get_context
from atlas_tui.config import Config
from collectors.base import CollectorStatus
from collectors.scheduler import ScheduledStatus
from storage.alerts import EngineStatus, read_engine_state
from storage.backup_runs import last_runs_by_set, last_success_by_set
from storage.outbox import ChannelHealthRecord, ChannelState, channel_health
from storage.status import daemon_state, read_heartbeat, store_size

__all__ = [
    "AlertingInfo",
    "BackupInfo",
    "ChannelInfo",
    "CollectorInfo",
    "DaemonInfo",
    "RuleProblemInfo",
    "StoreInfo",
    "SystemStatus",
    "backup_infos",
    "build_status",
    "router",
]

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


class ChannelInfo(BaseModel):
    """Health and queue of one notification channel."""

    name: str
    """Channel name from the config's `channels`."""
    configured: bool
    """False for a channel that is gone from the config but still has rows in the store."""
    state: ChannelState
    """`ok`, `degraded` (rate limited), `failing` (transient errors) or `misconfigured`
    (notices held until the channel's config changes). A channel that never sent is `ok`."""
    last_success_at: float | None
    """UTC epoch seconds of the latest delivered notice."""
    last_error_at: float | None
    """UTC epoch seconds of the latest failed attempt."""
    last_error: str | None
    """Message of the latest failure, kept after a recovery; URLs are redacted."""
    consecutive_failures: int
    """Failed attempts since the latest success."""
    queue_depth: int
    """Pending and held notices."""
    dead_letters: int
    """Notices given up on."""
    last_error_class: str | None = None
    """Named class of the latest failure, such as `read_timeout` or `http_rate_limited`."""
    next_retry_at: float | None = None
    """UTC epoch seconds when the next waiting notice is attempted; null when none waits."""
    failing_since: float | None = None
    """UTC epoch seconds since the channel has been failing without a success; null while it works."""

    @classmethod
    def from_record(cls, record: ChannelHealthRecord, configured: bool) -> ChannelInfo:
        """Convert a store row to the response item."""
        return cls(
            name=record.channel,
            configured=configured,
            state=record.state,
            last_success_at=record.last_success_at,
            last_error_at=record.last_error_at,
            last_error=record.last_error,
            consecutive_failures=record.consecutive_failures,
            queue_depth=record.queue_depth,
            dead_letters=record.dead_letters,
            last_error_class=record.last_error_class,
            next_retry_at=record.next_retry_at,
            failing_since=record.failing_since,
        )


class BackupInfo(BaseModel):
    """The latest run of one backup set."""

    backup_set: str
    """Name of the backup set."""
    last_backup_id: str | None
    """Snapshot id of the latest run, `backup_<unix seconds>_<trigger>`; null for a run that wrote none."""
    last_status: str | None
    """Outcome of the latest run: `running`, `ok`, `partial` or `failed`."""
    last_success_at: float | None
    """UTC epoch seconds when the latest successful run ended."""
    last_run_at: float | None = None
    """UTC epoch seconds when the latest run started."""
    last_error: str | None = None
    """Error of the latest run; null when it succeeded."""


class RuleProblemInfo(BaseModel):
    """A rule whose health is `error`, so it cannot evaluate as written."""

    rule_id: str
    """Id of the rule."""
    message: str | None
    """The reason, for example `unknown metric cpu_usge`; null when the engine gave none."""


class AlertingInfo(BaseModel):
    """The alert engine's latest evaluation cycle, as the engine recorded it in the store."""

    last_evaluation: float | None = None
    """UTC epoch seconds of the latest scheduled evaluation; null before the first."""
    missed_evaluations: int = 0
    """Evaluations skipped because the previous one overran the interval."""
    rule_problems: list[RuleProblemInfo] = Field(default_factory=list)
    """Rules whose health is `error`, in the engine's order."""

    @classmethod
    def from_engine(cls, engine: EngineStatus) -> AlertingInfo:
        """Convert the engine's stored status to the response item."""
        problems = [
            RuleProblemInfo(rule_id=rule_id, message=message)
            for rule_id, status, message in engine.rule_health
            if status == "error"
        ]
        return cls(
            last_evaluation=engine.last_tick, missed_evaluations=engine.missed_evaluations, rule_problems=problems
        )


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
    channels: list[ChannelInfo] = Field(default_factory=list)
    """Every configured channel and every channel with rows in the store, by name."""
    backups: list[BackupInfo] = Field(default_factory=list)
    """The latest run per backup set, from the run records in the store, by set name."""
    alerting: AlertingInfo = Field(default_factory=AlertingInfo)
    """The alert engine's latest evaluation and the rules it cannot evaluate."""


@router.get("/status", response_model=SystemStatus)
def get_status(context: ApiContext = Depends(get_context), config: Config = Depends(get_config)) -> SystemStatus:
    """Return the version, uptime, collectors, store size, channel health, alert engine health and daemon state."""
    return build_status(context, config)


def build_status(context: ApiContext, config: Config) -> SystemStatus:
    """Read everything `GET /api/system/status` returns at `context.clock()`. Blocking.

    Raises:
        fastapi.HTTPException: 503 when the store is missing or a read fails.
    """
    now = context.clock()
    with context.read_connection() as conn:
        heartbeat = read_heartbeat(conn)
        stored_channels = channel_health(conn, now)
        engine = read_engine_state(conn)
        backups = backup_infos(conn)
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
        channels=_channel_infos(stored_channels, config),
        alerting=AlertingInfo.from_engine(engine),
        backups=backups,
    )


def backup_infos(conn: sqlite3.Connection) -> list[BackupInfo]:
    """Return the latest run and latest success of each backup set, by set name. Blocking."""
    latest_runs = last_runs_by_set(conn)
    successes = last_success_by_set(conn)
    infos = []
    for name in sorted(latest_runs):
        run = latest_runs[name]
        success = successes.get(name)
        infos.append(
            BackupInfo(
                backup_set=name,
                last_backup_id=run.snapshot_id,
                last_status=run.status,
                last_success_at=success.finished if success is not None else None,
                last_run_at=run.started,
                last_error=run.error,
            )
        )
    return infos


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


def _channel_infos(records: list[ChannelHealthRecord], config: Config) -> list[ChannelInfo]:
    by_name = {record.channel: record for record in records}
    names = sorted(set(by_name) | set(config.channels))
    return [
        ChannelInfo.from_record(by_name.get(name) or _unused_channel(name), configured=name in config.channels)
        for name in names
    ]


def _unused_channel(name: str) -> ChannelHealthRecord:
    return ChannelHealthRecord(
        channel=name, state="ok", last_success_at=None, last_error_at=None, last_error_class=None,
        last_error=None, http_status=None, response_body=None, next_retry_at=None,
        consecutive_failures=0, failing_since=None, queue_depth=0, held=0, dead_letters=0,
    )


def _latest_store_error(statuses: list[CollectorStatus]) -> ScheduledStatus | None:
    """Return the status whose sink failed most recently, or None when no write failed."""
    failed = [
        status
        for status in statuses
        if isinstance(status, ScheduledStatus) and status.last_store_error_at is not None
    ]
    return max(failed, key=lambda status: status.last_store_error_at or 0.0, default=None)
