"""`/healthz` and `/readyz` served by real uvicorn over a real store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from collectors.scheduler import STORE_WRITE_FAILED, ScheduledStatus
from storage.db import open_store
from storage.status import Heartbeat, clear_heartbeat, write_heartbeat
from tests.api.conftest import NOW, STARTED_AT, SYSTEM_STATUS


def _set_heartbeat(data_dir: Path, updated_at: float | None) -> None:
    conn = open_store(data_dir)
    try:
        if updated_at is None:
            clear_heartbeat(conn)
        else:
            beat = Heartbeat(pid=1, host="host", started_at=STARTED_AT, updated_at=updated_at, version="t")
            write_heartbeat(conn, beat)
    finally:
        conn.close()


async def test_healthz_ok(serve, data_dir: Path) -> None:
    """GET /healthz returns 200 with status ok."""
    client = await serve(data_dir)

    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_healthz_without_store(serve, tmp_path: Path) -> None:
    """/healthz stays 200 when the store is missing, because it reads nothing."""
    client = await serve(tmp_path / "nothing")

    response = await client.get("/healthz")

    assert response.status_code == 200


async def test_readyz_ready(serve, data_dir: Path) -> None:
    """A store, a fresh heartbeat and a fresh collector give 200 and every check passed."""
    client = await serve(data_dir)

    response = await client.get("/readyz")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ready"
    assert body["reasons"] == []
    assert [check["name"] for check in body["checks"]] == ["store", "heartbeat", "collector:system"]
    assert all(check["ok"] for check in body["checks"])


async def test_readyz_missing_store(serve, tmp_path: Path) -> None:
    """Without a store /readyz returns 503 naming the missing file."""
    client = await serve(tmp_path / "nothing")

    response = await client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "not_ready"
    assert body["reasons"][0].startswith("store: store not found")


async def test_readyz_stale_heartbeat(serve, data_dir: Path) -> None:
    """A heartbeat older than the stale limit (15 s in the fixture) gives 503."""
    _set_heartbeat(data_dir, NOW - 60.0)
    client = await serve(data_dir)

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["reasons"] == ["heartbeat: heartbeat 60.0 s old, limit 15 s"]


async def test_readyz_no_heartbeat(serve, data_dir: Path) -> None:
    """A store without a heartbeat row (daemon not started yet) gives 503."""
    _set_heartbeat(data_dir, None)
    client = await serve(data_dir)

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["reasons"][0].startswith("heartbeat: no heartbeat written yet")


async def test_readyz_collector_not_run(serve, data_dir: Path) -> None:
    """A collector that has not started a cycle yet makes the daemon not ready."""
    client = await serve(data_dir, [replace(SYSTEM_STATUS, last_run=None)])

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["reasons"] == ["collector:system: no cycle started yet"]


async def test_readyz_collector_stale(serve, data_dir: Path) -> None:
    """A 5 s collector whose last cycle began 20 s ago is past its 15 s limit."""
    client = await serve(data_dir, [replace(SYSTEM_STATUS, last_run=NOW - 20.0)])

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["reasons"] == ["collector:system: last cycle started 20.0 s ago, limit 15 s"]


async def test_readyz_collector_error_still_ready(serve, data_dir: Path) -> None:
    """A collector whose cycle failed but ran on time does not make the daemon unready."""
    client = await serve(data_dir, [replace(SYSTEM_STATUS, last_error="OSError: boom")])

    response = await client.get("/readyz")

    assert response.status_code == 200


async def test_readyz_store_write_failing(serve, data_dir: Path) -> None:
    """A collector whose samples the store rejects makes the daemon not ready."""
    error = f"{STORE_WRITE_FAILED}database is locked"
    status = ScheduledStatus(name="system", interval=5.0, last_run=NOW - 1.0, last_error=error)
    client = await serve(data_dir, [status])

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["reasons"] == [f"collector:system: {error}"]
