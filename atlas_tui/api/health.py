"""`GET /healthz` and `GET /readyz`: liveness and readiness probes for supervisors and load balancers.

`/healthz` returns 200 whenever the process serves requests at all. It reads nothing,
so a slow or broken store never makes a supervisor restart a daemon that still runs.
`/readyz` returns 200 only while the daemon does its job: the store opens and runs
a query, the heartbeat is fresh, every collector has started a cycle recently, and no
collector's samples are being rejected by the store. Otherwise it returns 503 and
lists the failed checks.

Neither route needs a token. Both return the same body shape for every outcome, so a
probe can log it as it is. Freshness is judged with the heartbeat's own stale limit
(`atlas_tui.daemon.heartbeat_stale_after`) applied to each collector's interval.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from atlas_tui.api.context import ApiContext, get_context
from atlas_tui.daemon import heartbeat_stale_after
from collectors.base import CollectorStatus
from collectors.scheduler import STORE_WRITE_FAILED
from storage.status import Heartbeat, daemon_state, read_heartbeat

__all__ = ["Health", "Readiness", "ReadinessCheck", "check_readiness", "router"]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Body of `GET /healthz`."""

    status: Literal["ok"] = "ok"
    """Always `ok`: any response at all means the process is alive."""


class ReadinessCheck(BaseModel):
    """The outcome of one readiness check."""

    name: str
    """Name of the check: `store`, `heartbeat` or `collector:<name>`."""
    ok: bool
    """True when the check passed."""
    detail: str
    """Observed value, for example `last cycle started 1.2 s ago, limit 15 s`."""


class Readiness(BaseModel):
    """Body of `GET /readyz`, for 200 and 503 alike."""

    status: Literal["ready", "not_ready"]
    """`ready` when every check passed."""
    reasons: list[str]
    """One line per failed check, empty when ready."""
    checks: list[ReadinessCheck]
    """Every check in the order it ran."""


@router.get("/healthz", response_model=Health)
def get_healthz() -> Health:
    """Return 200 while the process serves requests; reads no store."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A check failed; `reasons` names it."}},
)
def get_readyz(context: ApiContext = Depends(get_context)) -> JSONResponse:
    """Return 200 when the store, the heartbeat and every collector are healthy, else 503."""
    readiness = check_readiness(context)
    code = 200 if readiness.status == "ready" else 503
    return JSONResponse(status_code=code, content=readiness.model_dump())


def check_readiness(context: ApiContext) -> Readiness:
    """Run every readiness check at `context.clock()` and collect the outcome. Blocking."""
    now = context.clock()
    store, heartbeat = _check_store(context)
    checks = [store]
    if store.ok:
        checks.append(_check_heartbeat(heartbeat, now, context.stale_after))
    checks.extend(_check_collector(status, now) for status in context.statuses_provider())

    reasons = [f"{check.name}: {check.detail}" for check in checks if not check.ok]
    return Readiness(status="not_ready" if reasons else "ready", reasons=reasons, checks=checks)


def _check_store(context: ApiContext) -> tuple[ReadinessCheck, Heartbeat | None]:
    """Open the store and read the heartbeat row, which proves that queries work."""
    try:
        with context.read_connection() as conn:
            heartbeat = read_heartbeat(conn)
    except HTTPException as err:
        # read_connection has already logged a failed open or query with the path.
        return ReadinessCheck(name="store", ok=False, detail=str(err.detail)), None
    except sqlite3.Error as err:
        return ReadinessCheck(name="store", ok=False, detail=f"store read failed: {err}"), None
    return ReadinessCheck(name="store", ok=True, detail="store opened and read"), heartbeat


def _check_heartbeat(heartbeat: Heartbeat | None, now: float, stale_after: float) -> ReadinessCheck:
    state = daemon_state(heartbeat, now, stale_after)
    if heartbeat is None:
        return ReadinessCheck(name="heartbeat", ok=False, detail="no heartbeat written yet; is the daemon starting?")
    age = now - heartbeat.updated_at
    detail = f"heartbeat {age:.1f} s old, limit {stale_after:g} s"
    return ReadinessCheck(name="heartbeat", ok=state == "running", detail=detail)


def _check_collector(status: CollectorStatus, now: float) -> ReadinessCheck:
    name = f"collector:{status.name}"
    if status.last_error is not None and status.last_error.startswith(STORE_WRITE_FAILED):
        return ReadinessCheck(name=name, ok=False, detail=status.last_error)
    if status.last_run is None:
        return ReadinessCheck(name=name, ok=False, detail="no cycle started yet")

    limit = heartbeat_stale_after(status.interval)
    age = now - status.last_run
    detail = f"last cycle started {age:.1f} s ago, limit {limit:g} s"
    return ReadinessCheck(name=name, ok=age <= limit, detail=detail)
