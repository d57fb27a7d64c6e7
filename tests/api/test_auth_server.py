"""The guard on real uvicorn at 127.0.0.1: early 413 over a raw socket, WebSocket 401/403, TLS with HSTS.

The TLS test makes a self-signed certificate with the `openssl` command and is
skipped where that command is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from atlas_tui.api import ApiServer, create_api
from atlas_tui.api.security import HSTS_VALUE
from atlas_tui.config import Config
from tests.api.conftest import NOW
from tests.api_tokens import bearer, issue_token

LIMIT = 4096
"""`api.max_body_bytes` of the apps in this file."""


@asynccontextmanager
async def _running(data_dir: Path, api: dict[str, Any] | None = None, **server: Any) -> AsyncIterator[ApiServer]:
    config = Config.model_validate({"api": {"max_body_bytes": LIMIT, **(api or {})}})
    app = create_api(data_dir, started_at=NOW, version="t", statuses_provider=list, clock=lambda: NOW, config=config)
    api_server = ApiServer(app, 0, **server)
    api_server.bind()
    task = asyncio.create_task(api_server.serve())
    try:
        for _ in range(250):
            if api_server.started:
                break
            await asyncio.sleep(0.02)
        yield api_server
    finally:
        api_server.stop()
        await asyncio.wait_for(task, timeout=5.0)


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length body."""
    status = await asyncio.wait_for(reader.readline(), timeout=5.0)
    headers: dict[str, str] = {}
    while (line := await asyncio.wait_for(reader.readline(), timeout=5.0)) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout=5.0)
    return status, headers, body


async def test_413_before_body_read(data_dir: Path) -> None:
    """A request announcing 10 MiB gets 413 after sending only its headers and 1 KiB of body."""
    token = issue_token(data_dir)
    async with _running(data_dir) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = (
            f"POST /api/alerts/ack/alert_1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n"
        )
        writer.write(head.encode() + b" " * 1024)
        await writer.drain()

        status, headers, body = await _read_response(reader)
        writer.close()

    assert status.startswith(b"HTTP/1.1 413")
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "body_too_large"
    assert json.loads(body)["error"]["details"] == {"limit_bytes": str(LIMIT)}


async def test_chunked_413_while_sending(data_dir: Path) -> None:
    """A chunked body without a length gets 413 once it passes the limit, before its last chunk."""
    token = issue_token(data_dir)
    async with _running(data_dir) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = (
            f"POST /api/alerts/ack/alert_1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b" " * 3000
        writer.write(head.encode() + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2)
        await writer.drain()

        status, _headers, body = await _read_response(reader)
        writer.close()

    assert status.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "body_too_large"


async def test_small_body_reaches_route(data_dir: Path) -> None:
    """A body under the limit reaches the route, which responds 404 for an unknown alert."""
    headers = bearer(issue_token(data_dir))
    async with _running(data_dir) as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=headers) as http:
            response = await http.post("/api/alerts/ack/alert_99", json={"message": "x" * 100})

    assert response.status_code == 404


async def test_websocket_401_without_token(data_dir: Path) -> None:
    """The /ws handshake without a token is refused with HTTP 401 before any route runs."""
    async with _running(data_dir) as server:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"ws://127.0.0.1:{server.port}/ws"):
                pass

    assert caught.value.response.status_code == 401
    assert b"missing_token" in caught.value.response.body


async def test_websocket_403_without_read(data_dir: Path) -> None:
    """The /ws handshake with a token lacking `read` is refused with HTTP 403."""
    headers = bearer(issue_token(data_dir, "ingest"))
    async with _running(data_dir) as server:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"ws://127.0.0.1:{server.port}/ws", additional_headers=headers):
                pass

    assert caught.value.response.status_code == 403


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is needed to make a certificate")
async def test_tls_with_hsts(data_dir: Path, tmp_path: Path) -> None:
    """With a certificate and key the API speaks HTTPS only and sends HSTS."""
    cert, key = _self_signed(tmp_path)
    headers = bearer(issue_token(data_dir))
    trust = ssl.create_default_context(cafile=str(cert))
    tls = {"tls_cert": str(cert), "tls_key": str(key)}
    async with _running(data_dir, tls, tls_cert=cert, tls_key=key) as server:
        async with httpx.AsyncClient(verify=trust, headers=headers, timeout=5.0) as http:
            secure = await http.get(f"https://127.0.0.1:{server.port}/api/metrics")
            with pytest.raises(httpx.TransportError):
                await http.get(f"http://127.0.0.1:{server.port}/api/metrics")

    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"] == HSTS_VALUE


async def test_no_hsts_without_tls(data_dir: Path) -> None:
    """Plain HTTP responses carry no HSTS header, which browsers would ignore anyway."""
    headers = bearer(issue_token(data_dir))
    async with _running(data_dir) as server:
        async with httpx.AsyncClient(headers=headers) as http:
            response = await http.get(f"http://127.0.0.1:{server.port}/api/metrics")

    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers
