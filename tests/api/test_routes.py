"""The API routes served by real uvicorn on 127.0.0.1 over a real SQLite store."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest

from atlas_tui.api import API_HOST, ApiBindError, ApiServer, create_api
from tests.api.conftest import NOW, STARTED_AT


async def test_metrics_all(serve, data_dir: Path) -> None:
    """GET /api/metrics returns the newest sample of every series."""
    client = await serve(data_dir)

    response = await client.get("/api/metrics")

    items = response.json()
    assert response.status_code == 200
    assert len(items) == 3
    assert {"name": "cpu_usage", "labels": {}, "ts": NOW - 1.0, "value": 12.0} in items


async def test_metrics_name_filter(serve, data_dir: Path) -> None:
    """?name= keeps only that metric's series, each with its labels."""
    client = await serve(data_dir)

    items = (await client.get("/api/metrics", params={"name": "disk_usage"})).json()

    assert sorted(item["labels"]["mount"] for item in items) == ["/", "/var"]
    assert {item["name"] for item in items} == {"disk_usage"}


async def test_metrics_unknown_name(serve, data_dir: Path) -> None:
    """An unknown ?name= returns 200 with an empty list."""
    client = await serve(data_dir)

    response = await client.get("/api/metrics", params={"name": "nope"})

    assert response.status_code == 200
    assert response.json() == []


async def test_status_shape(serve, data_dir: Path) -> None:
    """GET /api/system/status reports version, uptime, collectors, store and daemon state."""
    client = await serve(data_dir)

    body = (await client.get("/api/system/status")).json()

    assert body["version"] == "9.9.9"
    assert body["uptime_seconds"] == NOW - STARTED_AT
    assert body["data_dir"] == str(data_dir.resolve())
    assert body["daemon"] == {"state": "running", "started_at": STARTED_AT}
    assert body["store"]["db_bytes"] > 0
    assert body["collectors"] == [
        {
            "name": "system",
            "interval": 5.0,
            "last_run": NOW - 2.0,
            "last_duration_ms": 12.5,
            "last_error": None,
            "failures": 1,
            "store_write_failures": 0,
            "unavailable": {"cpu_freq": "FileNotFoundError"},
        }
    ]
    assert body["store"]["last_write_error"] is None
    assert body["store"]["last_write_error_at"] is None


async def test_missing_store_503(serve, tmp_path: Path) -> None:
    """Without a store file the routes return 503, because no token can be checked."""
    client = await serve(tmp_path / "nothing")

    response = await client.get("/api/metrics")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "token_store_unavailable"


async def test_binds_loopback_only(data_dir: Path) -> None:
    """The server socket is bound to 127.0.0.1."""
    server = ApiServer(create_api(data_dir, started_at=0.0, version="t", statuses_provider=list), 0)
    server.bind()
    server.stop()
    serving = asyncio.create_task(server.serve())

    host, port = server.address
    await asyncio.wait_for(serving, timeout=5.0)
    assert host == API_HOST
    assert port > 0


async def test_busy_port_raises(data_dir: Path) -> None:
    """Binding a port that another socket listens on raises ApiBindError naming the port."""
    with socket.socket() as taken:
        taken.bind((API_HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ApiServer(create_api(data_dir, started_at=0.0, version="t", statuses_provider=list), port)

        with pytest.raises(ApiBindError) as caught:
            server.bind()

    assert f"{API_HOST}:{port}" in str(caught.value)
    assert "--no-api" in str(caught.value)


async def test_signal_handlers_untouched(serve, data_dir: Path) -> None:
    """Serving does not replace the process's SIGTERM and SIGINT handlers."""
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    client = await serve(data_dir)
    await client.get("/api/metrics")
    await asyncio.sleep(0)

    after = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    assert after == before
