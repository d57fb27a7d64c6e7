"""`GET /api/system/status`: notification channel health and the backup list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from atlas_tui.api import ApiServer, create_api
from atlas_tui.config import Config
from storage.backup_runs import finish_run, start_run
from storage.db import open_store
from storage.outbox import prepare_channel
from tests.api.conftest import NOW, STARTED_AT, SYSTEM_STATUS
from tests.api_tokens import bearer, issue_token

CONFIG = Config.model_validate(
    {
        "channels": {
            "ops-webhook": {"type": "webhook", "url": "https://hooks.example.org/atlas"},
            "unused": {"type": "webhook", "url": "https://hooks.example.org/other"},
        }
    }
)


@pytest.fixture
async def client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app with two configured channels and a stored row for a removed one."""
    conn = open_store(data_dir)
    try:
        prepare_channel(conn, "ops-webhook", "hash-1", NOW - 50.0)
        prepare_channel(conn, "removed", "hash-2", NOW - 40.0)
    finally:
        conn.close()
    app = create_api(
        data_dir, started_at=STARTED_AT, version="t", statuses_provider=lambda: [SYSTEM_STATUS],
        stale_after=15.0, clock=lambda: NOW, config=CONFIG,
    )
    server = ApiServer(app, 0)
    server.bind()
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    headers = bearer(issue_token(data_dir))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5.0, headers=headers) as http:
        yield http
    server.stop()
    await asyncio.wait_for(task, timeout=5.0)


async def test_status_lists_channels(client: httpx.AsyncClient) -> None:
    """Configured channels and channels with store rows are listed by name."""
    body = (await client.get("/api/system/status")).json()

    names = [(c["name"], c["configured"]) for c in body["channels"]]
    assert names == [("ops-webhook", True), ("removed", False), ("unused", True)]


async def test_status_channel_fields(client: httpx.AsyncClient) -> None:
    """A channel that never sent is ok with an empty queue and no error."""
    body = (await client.get("/api/system/status")).json()

    unused = next(c for c in body["channels"] if c["name"] == "unused")
    assert unused == {
        "name": "unused", "configured": True, "state": "ok", "last_success_at": None, "last_error_at": None,
        "last_error": None, "consecutive_failures": 0, "queue_depth": 0, "dead_letters": 0,
        "last_error_class": None, "next_retry_at": None, "failing_since": None,
    }


async def test_status_backups_empty(client: httpx.AsyncClient) -> None:
    """The backup list is present and empty before the first backup run."""
    body = (await client.get("/api/system/status")).json()

    assert body["backups"] == []


async def test_status_backups_latest(client: httpx.AsyncClient, data_dir: Path) -> None:
    """Each set shows its latest run, and the end of its latest success even after a failure."""
    conn = open_store(data_dir)
    try:
        first = start_run(conn, kind="backup", trigger="scheduled", now=NOW - 7200, set_name="node")
        finish_run(conn, first, status="ok", now=NOW - 7100, snapshot_id="backup_1700000000_scheduled")
        second = start_run(conn, kind="backup", trigger="manual", now=NOW - 60, set_name="node")
        finish_run(conn, second, status="failed", now=NOW - 50, error="repository locked by pid 42")
        third = start_run(conn, kind="backup", trigger="manual", now=NOW - 60, set_name="analytics")
        finish_run(conn, third, status="ok", now=NOW - 40, snapshot_id="backup_1700007140_manual")
    finally:
        conn.close()

    body = (await client.get("/api/system/status")).json()

    assert [item["backup_set"] for item in body["backups"]] == ["analytics", "node"]
    analytics, node = body["backups"]
    assert analytics["last_status"] == "ok"
    assert analytics["last_backup_id"] == "backup_1700007140_manual"
    assert analytics["last_success_at"] == NOW - 40
    assert node["last_status"] == "failed"
    assert node["last_backup_id"] is None
    assert node["last_error"] == "repository locked by pid 42"
    assert node["last_run_at"] == NOW - 60
    assert node["last_success_at"] == NOW - 7100
