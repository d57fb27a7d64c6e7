"""The ingest route on real uvicorn at 127.0.0.1: early 413 and a parallel double send."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from atlas_tui.api import ApiServer
from storage.db import DB_FILENAME, connect
from storage.events import count_events
from tests.analytics.conftest import APP_ID, AUTH, INGEST_KEY, make_batch, make_event

URL = "/api/analytics/events"


@pytest.fixture
async def server(build_app: Callable[..., FastAPI]) -> AsyncIterator[ApiServer]:
    """The default app served by uvicorn on a free port of 127.0.0.1."""
    api = ApiServer(build_app(), 0)
    api.bind()
    task = asyncio.create_task(api.serve())
    for _ in range(250):
        if api.started:
            break
        await asyncio.sleep(0.02)
    yield api
    api.stop()
    await asyncio.wait_for(task, timeout=5.0)


async def test_413_before_body_read(server: ApiServer) -> None:
    """A request announcing 2 MiB gets 413 after sending only its headers and 1 KiB."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {INGEST_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n"
    )
    writer.write(head.encode() + b" " * 1024)
    await writer.drain()

    status_line = await asyncio.wait_for(reader.readline(), timeout=5.0)
    writer.close()

    assert status_line.startswith(b"HTTP/1.1 413")


async def test_parallel_double_send(server: ApiServer, data_dir: Path) -> None:
    """The same 50-event batch posted by two threads at once is stored once."""
    batch = make_batch([make_event() for _ in range(50)])
    barrier = threading.Barrier(2)

    def send() -> httpx.Response:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10.0) as http:
            barrier.wait(timeout=5.0)
            return http.post(URL, json=batch, headers=AUTH)

    responses = await asyncio.gather(asyncio.to_thread(send), asyncio.to_thread(send))

    tallies = sorted((response.json()["accepted"], response.json()["duplicate"]) for response in responses)
    assert tallies == [(0, 50), (50, 0)]
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        assert count_events(conn, APP_ID) == 50


async def test_gzip_over_http(server: ApiServer) -> None:
    """A gzip batch sent over a real connection is accepted."""
    payload = gzip.compress(json.dumps(make_batch([make_event()])).encode())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5.0) as http:
        response = await http.post(URL, content=payload, headers={**AUTH, "Content-Encoding": "gzip"})

    assert response.status_code == 200
    assert response.json()["accepted"] == 1


async def test_accepted_connections_send_without_delay(server: ApiServer) -> None:
    """Accepted sockets have Nagle's algorithm off, so a kept-alive response is not held for a delayed ACK."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        await writer.drain()
        await asyncio.wait_for(reader.readline(), timeout=5.0)
        connections = list(server._server.server_state.connections)  # noqa: SLF001 - the accepted sockets
        options = [
            connection.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            for connection in connections
        ]
    finally:
        writer.close()
    assert options
    assert all(options)
