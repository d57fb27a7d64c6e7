"""Fixtures for analytics tests: a migrated store, an API app with one configured app, event builders.

Every app uses a `Clock` the test can move, and the ASGI client reports the test
address 203.0.113.77 as the client, so privacy tests can look for it in the store.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from atlas_tui.api import create_api
from atlas_tui.config import Config
from storage.db import open_store

APP_ID = "atlas-wallet"
INGEST_KEY = "pk_atlas_wallet_demo"
AUTH = {"Authorization": f"Bearer {INGEST_KEY}"}
CLIENT_IP = "203.0.113.77"
NOW = 1_780_000_000.0
"""Daemon receipt time of every request unless a test moves the clock."""

TYPE_FIELDS: dict[str, dict[str, Any]] = {
    "app_launch": {},
    "screen_view": {"screen": "send"},
    "user_interaction": {"element": "send_button", "action": "tap"},
    "transaction": {"tx_type": "send", "amount": 0.015, "asset": "BTC"},
    "performance_metric": {"name": "app_start_time", "value": 812.0},
    "error": {"message": "StateError: bad state", "stack_trace": "#0 main (app.dart:1)", "fatal": False, "handled": True},
    "session_end": {"duration_s": 125.5},
}


class Clock:
    """A settable clock for `create_api`."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(ts: float) -> str:
    """Format UTC epoch seconds as ISO 8601 with an offset."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def make_event(kind: str = "screen_view", *, client_ts: float = NOW - 60.0, **overrides: Any) -> dict[str, Any]:
    """Build a valid schema-1 event of `kind`; `overrides` replace or add fields."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "client_ts": iso(client_ts),
        "session_id": "sess-1",
        "device_id": "device-1",
        "app_id": APP_ID,
        "app_version": "2.3.0",
        "platform": "android",
        "privacy_level": "full",
        "properties": {},
        **TYPE_FIELDS.get(kind, {}),
    }
    event.update(overrides)
    return event


def make_batch(events: list[dict[str, Any]], *, sent_at: float = NOW, schema: int = 1) -> dict[str, Any]:
    """Wrap `events` in a batch envelope."""
    return {"schema": schema, "sent_at": iso(sent_at), "events": events}


def analytics_config(**overrides: Any) -> Config:
    """A config with the one app `APP_ID`; `overrides` go into the `analytics` section."""
    section: dict[str, Any] = {"apps": {APP_ID: {"ingest_key": INGEST_KEY}}, **overrides}
    return Config.model_validate({"analytics": section})


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory with a migrated store."""
    path = tmp_path / "data"
    open_store(path).close()
    return path


@pytest.fixture
def clock() -> Clock:
    """The clock of the app under test, at `NOW`."""
    return Clock()


@pytest.fixture
def build_app(data_dir: Path, clock: Clock) -> Callable[..., FastAPI]:
    """Return a factory of API apps on `data_dir` and `clock`, taking `analytics` overrides."""

    def build(**overrides: Any) -> FastAPI:
        return create_api(
            data_dir,
            started_at=NOW - 60.0,
            version="t",
            statuses_provider=list,
            clock=clock,
            config=analytics_config(**overrides),
        )

    return build


@pytest.fixture
async def client(build_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    """An ASGI client of the default app, seen as coming from `CLIENT_IP`."""
    transport = httpx.ASGITransport(app=build_app(), client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http
