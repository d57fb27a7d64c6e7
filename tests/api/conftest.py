"""Fixtures that serve the real API app with uvicorn on 127.0.0.1 and a free port.

The clients `serve` returns send a test token with every scope, so route tests need
no token handling. Tests of the token checks pass `token=None` or build their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from atlas_tui.api import ApiServer, create_api
from collectors.base import CollectorStatus, Sample
from storage.db import DB_FILENAME
from storage.db import open_store
from storage.metrics import write_samples
from storage.status import Heartbeat, write_heartbeat
from tests.api_tokens import bearer, issue_token

NOW = 1_750_000_000.0
"""Fixed clock of every app the fixtures build."""

STARTED_AT = NOW - 120.0
"""Start time reported by the apps: two minutes before `NOW`."""

_ISSUE = "issue a token"
"""Default of `serve`'s `token`: create a token in the store being served."""

SYSTEM_STATUS = CollectorStatus(
    name="system",
    interval=5.0,
    last_run=NOW - 2.0,
    last_duration_ms=12.5,
    last_error=None,
    last_sample_count=20,
    runs=24,
    failures=1,
    unavailable={"cpu_freq": "FileNotFoundError"},
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A store with three series and a fresh heartbeat."""
    path = tmp_path / "data"
    conn = open_store(path)
    try:
        write_samples(
            conn,
            [
                Sample.of("cpu_usage", 12.0, NOW - 1.0),
                Sample.of("disk_usage", 55.5, NOW - 1.0, mount="/"),
                Sample.of("disk_usage", 80.0, NOW - 1.0, mount="/var"),
            ],
        )
        write_heartbeat(conn, Heartbeat(pid=1234, host="host", started_at=STARTED_AT, updated_at=NOW - 1.0, version="t"))
    finally:
        conn.close()
    return path


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """Return a coroutine function that serves an app for a data dir and gives back a client.

    The app reports `SYSTEM_STATUS` as its only collector unless `statuses` is given.
    The client sends a new token with every scope when the data dir has a store, a
    token no store knows when it has none, or the given `token` (None sends no header).
    """
    servers: list[tuple[ApiServer, asyncio.Task[None]]] = []
    clients: list[httpx.AsyncClient] = []

    async def start(
        directory: Path, statuses: list[CollectorStatus] | None = None, *, token: str | None = _ISSUE
    ) -> httpx.AsyncClient:
        reported = [SYSTEM_STATUS] if statuses is None else statuses
        if token is _ISSUE:
            token = issue_token(directory) if (directory / DB_FILENAME).is_file() else "atlas_not_issued"
        app = create_api(
            directory,
            started_at=STARTED_AT,
            version="9.9.9",
            statuses_provider=lambda: reported,
            stale_after=15.0,
            clock=lambda: NOW,
        )
        server = ApiServer(app, 0)
        server.bind()
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        for _ in range(100):
            if server.started:
                break
            await asyncio.sleep(0.02)
        headers = bearer(token) if token is not None else {}
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5.0, headers=headers)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    for server, task in servers:
        server.stop()
        await asyncio.wait_for(task, timeout=5.0)
