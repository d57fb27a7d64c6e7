"""The `api` config section in the app: rate limits with Retry-After, CORS, allowed hosts, body limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from atlas_tui.api import create_api
from atlas_tui.config import Config, load_config
from atlas_tui.errors import ConfigError
from tests.api.conftest import NOW
from tests.api_tokens import bearer, issue_token

ORIGIN = "https://ops.example.org"


@asynccontextmanager
async def _client(data_dir: Path, **api: Any) -> AsyncIterator[httpx.AsyncClient]:
    config = Config.model_validate({"api": api})
    app = create_api(data_dir, started_at=NOW, version="t", statuses_provider=list, clock=lambda: NOW, config=config)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        yield http


async def test_token_rate_429(data_dir: Path) -> None:
    """Over `per_token_per_minute` a token gets 429 with Retry-After in whole seconds."""
    headers = bearer(issue_token(data_dir))
    async with _client(data_dir, rate_limits={"per_token_per_minute": 6, "per_address_per_minute": 0}) as http:
        first = await http.get("/api/metrics", headers=headers)
        second = await http.get("/api/metrics", headers=headers)

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "10"
    assert second.json()["error"]["code"] == "rate_limited"
    assert second.json()["error"]["details"] == {"limit": "token", "retry_after": "10"}


async def test_token_rate_per_token(data_dir: Path) -> None:
    """Each token has its own budget: a second token is served after the first ran out."""
    first = bearer(issue_token(data_dir, name="one"))
    second = bearer(issue_token(data_dir, name="two"))
    async with _client(data_dir, rate_limits={"per_token_per_minute": 6, "per_address_per_minute": 0}) as http:
        await http.get("/api/metrics", headers=first)
        limited = await http.get("/api/metrics", headers=first)
        other = await http.get("/api/metrics", headers=second)

    assert limited.status_code == 429
    assert other.status_code == 200


async def test_address_rate_429(data_dir: Path) -> None:
    """Over `per_address_per_minute` an address gets 429 whatever token it sends, or none."""
    first = bearer(issue_token(data_dir, name="one"))
    second = bearer(issue_token(data_dir, name="two"))
    async with _client(data_dir, rate_limits={"per_address_per_minute": 12, "per_token_per_minute": 0}) as http:
        responses = [await http.get("/api/metrics", headers=first), await http.get("/api/metrics", headers=second)]
        guess = await http.get("/api/metrics", headers=bearer("atlas_guess"))

    assert [response.status_code for response in responses] == [200, 200]
    assert guess.status_code == 429
    assert guess.json()["error"]["details"]["limit"] == "address"
    assert guess.headers["Retry-After"] == "5"


async def test_probes_not_rate_limited(data_dir: Path) -> None:
    """Public probes are outside the rate limits, so a busy address does not fail its health checks."""
    async with _client(data_dir, rate_limits={"per_address_per_minute": 6}) as http:
        statuses = [(await http.get("/openapi.json")).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]


async def test_body_over_limit_413(data_dir: Path) -> None:
    """A declared body over `max_body_bytes` gets 413 naming the limit."""
    headers = bearer(issue_token(data_dir))
    async with _client(data_dir, max_body_bytes=1024) as http:
        response = await http.post("/api/alerts/ack/alert_1", content=b"x" * 2000, headers=headers)

    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"limit_bytes": "1024"}


async def test_streamed_body_over_limit_413(data_dir: Path) -> None:
    """A body sent in chunks without a length gets 413 once the chunks pass the limit."""
    headers = bearer(issue_token(data_dir))

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 600

    async with _client(data_dir, max_body_bytes=1024) as http:
        response = await http.post("/api/alerts/ack/alert_1", content=chunks(), headers=headers)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_cors_preflight_allowed(data_dir: Path) -> None:
    """A preflight from a configured origin gets 200 without a token and allows Authorization."""
    async with _client(data_dir, cors_origins=[ORIGIN]) as http:
        response = await http.options(
            "/api/metrics",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


async def test_cors_other_origin_refused(data_dir: Path) -> None:
    """A preflight from an origin not configured gets no Access-Control-Allow-Origin."""
    async with _client(data_dir, cors_origins=[ORIGIN]) as http:
        response = await http.options(
            "/api/metrics",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )

    assert response.status_code == 400
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_on_401(data_dir: Path) -> None:
    """A 401 to an allowed origin carries the CORS header, so the page can read the error."""
    async with _client(data_dir, cors_origins=[ORIGIN]) as http:
        response = await http.get("/api/metrics", headers={"Origin": ORIGIN})

    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_no_cors_by_default(data_dir: Path) -> None:
    """Without `cors_origins` no response allows another origin, even with a valid token."""
    headers = {"Origin": ORIGIN, **bearer(issue_token(data_dir))}
    async with _client(data_dir) as http:
        response = await http.get("/api/metrics", headers=headers)

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_allowed_host_accepted(data_dir: Path) -> None:
    """A host in `allowed_hosts` is served, and other names still get 400."""
    headers = bearer(issue_token(data_dir))
    async with _client(data_dir, allowed_hosts=["atlas.example.org"]) as http:
        named = await http.get("/api/metrics", headers={**headers, "Host": "atlas.example.org:8080"})
        other = await http.get("/api/metrics", headers={**headers, "Host": "evil.example"})
        loopback = await http.get("/api/metrics", headers=headers)

    assert named.status_code == 200
    assert other.status_code == 400
    assert loopback.status_code == 200


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"bind": "localhost"}, "api.bind: expected an IP address"),
        ({"tls_cert": "/c.pem"}, "set tls_key as well"),
        ({"cors_origins": ["*"]}, "api.cors_origins: expected an origin"),
        ({"cors_origins": ["https://ops.example.org/"]}, "api.cors_origins: expected an origin"),
        ({"allowed_hosts": ["https://atlas.example.org"]}, "api.allowed_hosts: expected a host name"),
        ({"max_body_bytes": 10}, "api.max_body_bytes: must be at least 1024"),
        ({"rate_limits": {"per_token_per_minute": -1}}, "api.rate_limits.per_token_per_minute: must be at least 0"),
    ],
)
def test_invalid_api_section(tmp_path: Path, section: dict[str, Any], message: str) -> None:
    """An invalid `api` value is rejected with its field path and what is expected."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api": section}), encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert message in str(caught.value)


def test_port_stays_top_level(tmp_path: Path) -> None:
    """The original dashboard's top-level `port` still sets the API port next to an `api` section."""
    path = tmp_path / "config.json"
    path.write_text('{"port": 9090, "api": {"bind": "127.0.0.1"}}', encoding="utf-8")

    config = load_config(path)

    assert config.port == 9090
    assert config.api.bind == "127.0.0.1"
