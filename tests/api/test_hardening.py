"""API hardening: Host header check, no CDN-backed docs pages, repeated `?name=` values."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "10.0.0.1"])
async def test_foreign_host_rejected(serve, data_dir: Path, host: str) -> None:
    """A Host header that is not a loopback name gets 400, so DNS rebinding cannot read the API."""
    client = await serve(data_dir)

    response = await client.get("/api/metrics", headers={"Host": host})

    assert response.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
async def test_loopback_hosts_accepted(serve, data_dir: Path, host: str) -> None:
    """127.0.0.1, localhost and [::1] are accepted with and without a port."""
    client = await serve(data_dir)

    plain = await client.get("/api/metrics", headers={"Host": host})
    with_port = await client.get("/api/metrics", headers={"Host": f"{host}:8080"})

    assert plain.status_code == 200
    assert with_port.status_code == 200


async def test_docs_pages_off(serve, data_dir: Path) -> None:
    """/docs and /redoc, which load scripts from a CDN, are not served, but /openapi.json is."""
    client = await serve(data_dir)

    docs = await client.get("/docs")
    redoc = await client.get("/redoc")
    schema = await client.get("/openapi.json")

    assert docs.status_code == 404
    assert redoc.status_code == 404
    assert schema.status_code == 200
    assert "/api/metrics" in schema.json()["paths"]


async def test_metrics_repeated_names(serve, data_dir: Path) -> None:
    """?name=a&name=b returns the series of both metrics, not only of the last one."""
    client = await serve(data_dir)

    response = await client.get("/api/metrics", params=[("name", "cpu_usage"), ("name", "disk_usage")])

    names = sorted(item["name"] for item in response.json())
    assert response.status_code == 200
    assert names == ["cpu_usage", "disk_usage", "disk_usage"]


async def test_metrics_duplicate_name_once(serve, data_dir: Path) -> None:
    """A name given twice lists its series once."""
    client = await serve(data_dir)

    items = (await client.get("/api/metrics", params=[("name", "cpu_usage"), ("name", "cpu_usage")])).json()

    assert [item["name"] for item in items] == ["cpu_usage"]


async def test_metrics_unknown_among_known(serve, data_dir: Path) -> None:
    """An unknown name next to a known one adds nothing."""
    client = await serve(data_dir)

    items = (await client.get("/api/metrics", params=[("name", "nope"), ("name", "cpu_usage")])).json()

    assert [item["name"] for item in items] == ["cpu_usage"]
