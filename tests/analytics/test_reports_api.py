"""`GET /api/analytics` and `atlas analytics summary` over a store with known sessions."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from atlas_tui.analytics.rollups import refresh
from atlas_tui.cli import main
from storage.db import DB_FILENAME, open_store
from tests.analytics.conftest import NOW
from tests.analytics.report_events import session, store
from tests.api_tokens import bearer, issue_token

START = NOW - 3 * 3600


@pytest.fixture
def filled(data_dir: Path) -> Path:
    """The test store with two sessions, one crashed, rolled up."""
    conn = open_store(data_dir)
    try:
        rows = session("d1", "s1", START) + session("d2", "s2", START + 60, end=False, fatal=True, version="2.4.0")
        store(conn, rows)
        refresh(conn)
    finally:
        conn.close()
    return data_dir


@pytest.fixture
def reader(filled: Path, client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The ASGI client of the filled store, sending an API token with the read scope."""
    client.headers.update(bearer(issue_token(filled, "read")))
    return client


async def test_summary_route(reader: httpx.AsyncClient) -> None:
    """The route returns the summary of the window with crash-free rates."""
    response = await reader.get("/api/analytics", params={"from": START - 60, "to": NOW})
    assert response.status_code == 200
    body = response.json()
    assert body["sessions"]["count"] == 2
    assert body["crash_free"]["sessions_pct"] == 50.0
    assert body["window"]["timezone"] == "UTC"


async def test_summary_route_filters(reader: httpx.AsyncClient) -> None:
    """The version filter keeps only that release."""
    response = await reader.get("/api/analytics", params={"from": START - 60, "to": NOW, "version": "2.4.0"})
    body = response.json()
    assert body["sessions"]["count"] == 1
    assert body["filters"]["version"] == "2.4.0"


async def test_summary_route_default_window(reader: httpx.AsyncClient) -> None:
    """Without from and to, the window is the 7 days before the clock."""
    body = (await reader.get("/api/analytics")).json()
    assert body["window"]["end"] == NOW
    assert body["window"]["start"] == NOW - 7 * 86400


async def test_summary_route_bad_window(reader: httpx.AsyncClient) -> None:
    """A window whose start is not before its end is rejected with 422."""
    response = await reader.get("/api/analytics", params={"from": NOW, "to": NOW - 1})
    assert response.status_code == 422


def test_cli_summary_json(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`atlas analytics summary --json` prints the same model as the route."""
    code = main(["analytics", "summary", "--data-dir", str(filled), "--from", str(START - 60), "--to", str(NOW), "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0
    assert body["sessions"]["crashed"] == 1
    assert body["crash_free"]["users_pct"] == 50.0


def test_cli_summary_text(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The text summary names the crash-free rates and each release."""
    code = main(["analytics", "summary", "--data-dir", str(filled), "--from", "2026-05-01T00:00Z", "--to", str(NOW)])
    out = capsys.readouterr().out
    assert code == 0
    assert "crash-free sessions 50.00 %" in out
    assert "2.4.0" in out


def test_cli_summary_no_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a store the command fails with exit code 1 and names the path."""
    code = main(["analytics", "summary", "--data-dir", str(tmp_path / "none")])
    assert code == 1
    assert DB_FILENAME in capsys.readouterr().err
