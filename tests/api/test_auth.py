"""Bearer tokens on every route: 401 without one, 403 without the scope, public probes, the rejection log.

The route list comes from the app itself, so a route another module adds later is
checked here without a change to this file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from atlas_tui.api import create_api
from atlas_tui.api.access import INGEST_PATH, Credential, required_access
from atlas_tui.api.auth import TokenCache
from atlas_tui.api.rejections import Rejection, RejectionLog
from atlas_tui.api_tokens import Scope, revoke
from storage.db import DB_FILENAME, connect
from tests.api.conftest import NOW
from tests.api_tokens import bearer, issue_token

_PARAM = re.compile(r"\{[^}]+\}")

_WITHOUT = {Scope.READ: "ingest", Scope.ACK: "read", Scope.ADMIN: "read,ack"}
"""For each required scope, token scopes that lack it."""


def _app(data_dir: Path) -> FastAPI:
    return create_api(data_dir, started_at=NOW, version="t", statuses_provider=list, clock=lambda: NOW)


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """Return (method, concrete path) of every HTTP route, with `x` for each path parameter."""
    found = []
    for route in iter_route_contexts(app.routes):
        if route.path is None or route.methods is None:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, _PARAM.sub("x", route.path)))
    return found


def _guarded(app: FastAPI) -> list[tuple[str, str, Scope]]:
    guarded = []
    for method, path in _routes(app):
        access = required_access(method, path)
        if isinstance(access, Scope):
            guarded.append((method, path, access))
    return guarded


def _websocket_paths(app: FastAPI) -> list[str]:
    return [route.path for route in iter_route_contexts(app.routes) if route.path and route.methods is None]


@pytest.fixture
def app(data_dir: Path) -> FastAPI:
    """An app on the test store, without any token yet."""
    return _app(data_dir)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An ASGI client of `app` that sends no token unless a test adds one."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        yield client


def test_route_table_covers_app(app: FastAPI) -> None:
    """The app has guarded routes of every kind the table names, so the loops below check something."""
    scopes = {scope for _method, _path, scope in _guarded(app)}

    assert {Scope.READ, Scope.ACK} <= scopes
    assert ("POST", INGEST_PATH) in _routes(app)


async def test_every_route_401_without_token(app: FastAPI, http: httpx.AsyncClient) -> None:
    """Each guarded route responds 401 `missing_token` naming its scope, with a Bearer challenge."""
    for method, path, scope in _guarded(app):
        response = await http.request(method, path)

        assert response.status_code == 401, (method, path)
        error = response.json()["error"]
        assert error["code"] == "missing_token", (method, path)
        assert error["details"] == {"required_scope": str(scope)}, (method, path)
        assert str(scope) in error["message"], (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer "), (method, path)


async def test_every_route_401_unknown_token(app: FastAPI, http: httpx.AsyncClient, data_dir: Path) -> None:
    """A token the store does not know gets 401 `invalid_token` on each guarded route."""
    issue_token(data_dir)
    for method, path, _scope in _guarded(app):
        response = await http.request(method, path, headers=bearer("atlas_not_a_real_token"))

        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "invalid_token", (method, path)
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], (method, path)


async def test_every_route_403_lacking_scope(app: FastAPI, http: httpx.AsyncClient, data_dir: Path) -> None:
    """A token without the route's scope gets 403 `insufficient_scope` naming the scope it needs."""
    tokens = {scope: issue_token(data_dir, scopes, name=f"without-{scope}") for scope, scopes in _WITHOUT.items()}
    for method, path, scope in _guarded(app):
        response = await http.request(method, path, headers=bearer(tokens[scope]))

        assert response.status_code == 403, (method, path)
        error = response.json()["error"]
        assert error["code"] == "insufficient_scope", (method, path)
        assert error["details"]["required_scope"] == str(scope), (method, path)
        assert error["details"]["token"] == f"without-{scope}", (method, path)
        assert f'scope="{scope}"' in response.headers["WWW-Authenticate"], (method, path)


async def test_every_route_admitted_with_scope(app: FastAPI, http: httpx.AsyncClient, data_dir: Path) -> None:
    """With the route's scope the request reaches the route: no 401 or 403."""
    tokens = {scope: issue_token(data_dir, str(scope), name=f"only-{scope}") for scope in _WITHOUT}
    for method, path, scope in _guarded(app):
        response = await http.request(method, path, headers=bearer(tokens[scope]))

        assert response.status_code not in (401, 403), (method, path, response.text)


async def test_admin_implies_read_and_ack(http: httpx.AsyncClient, data_dir: Path) -> None:
    """An admin-only token may read and acknowledge."""
    headers = bearer(issue_token(data_dir, "admin"))

    read = await http.get("/api/metrics", headers=headers)
    ack = await http.post("/api/alerts/ack/alert_99", headers=headers)

    assert read.status_code == 200
    assert ack.status_code == 404


async def test_public_routes_open(app: FastAPI, http: httpx.AsyncClient) -> None:
    """/healthz, /readyz and /openapi.json, where the app has them, need no token."""
    public = [(method, path) for method, path in _routes(app) if required_access(method, path) is Credential.NONE]
    assert ("GET", "/openapi.json") in public

    for method, path in public:
        response = await http.request(method, path)

        assert response.status_code not in (401, 403), (method, path)


async def test_unknown_path_needs_token(http: httpx.AsyncClient) -> None:
    """A path no route serves still needs a token, so a new route is never open by accident."""
    response = await http.get("/api/not-yet-written")

    assert response.status_code == 401


async def test_public_prefix_not_public(http: httpx.AsyncClient) -> None:
    """Public paths match exactly: a longer path that starts with one needs a token."""
    response = await http.get("/healthz/../api/metrics")

    assert response.status_code == 401


async def test_ingest_route_keeps_ingest_key(http: httpx.AsyncClient, data_dir: Path) -> None:
    """The ingest route is left to its own key check, which does not accept an API token."""
    token = issue_token(data_dir)

    response = await http.post(INGEST_PATH, json={}, headers=bearer(token))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unknown_ingest_key"


async def test_non_bearer_scheme_401(http: httpx.AsyncClient, data_dir: Path) -> None:
    """A token sent with another scheme than Bearer counts as missing."""
    token = issue_token(data_dir)

    response = await http.get("/api/metrics", headers={"Authorization": f"Basic {token}"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_token"


async def test_bearer_scheme_case_insensitive(http: httpx.AsyncClient, data_dir: Path) -> None:
    """`bearer` in lower case is accepted, as RFC 6750 schemes are case-insensitive."""
    token = issue_token(data_dir)

    response = await http.get("/api/metrics", headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200


async def test_revoked_token_401(app: FastAPI, http: httpx.AsyncClient, data_dir: Path) -> None:
    """A revoked token is rejected once the token cache reloads."""
    headers = bearer(issue_token(data_dir))
    before = await http.get("/api/metrics", headers=headers)
    conn = connect(data_dir / DB_FILENAME)
    try:
        revoke(conn, "test", NOW)
    finally:
        conn.close()
    app.state.token_cache.invalidate()

    after = await http.get("/api/metrics", headers=headers)

    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_token"


async def test_token_cache_refresh(data_dir: Path) -> None:
    """The cache serves a revoked token until `refresh_seconds` pass, then rejects it."""
    clock = [100.0]
    cache = TokenCache(data_dir, refresh_seconds=1.0, monotonic=lambda: clock[0])
    token = issue_token(data_dir, "read")
    assert (await cache.identify(token)) is not None
    conn = connect(data_dir / DB_FILENAME)
    try:
        revoke(conn, "test", NOW)
    finally:
        conn.close()

    clock[0] += 0.5
    cached = await cache.identify(token)
    clock[0] += 0.6
    reloaded = await cache.identify(token)

    assert cached is not None
    assert cached.name == "test"
    assert reloaded is None


async def test_token_cache_store_replaced(data_dir: Path) -> None:
    """A store removed and created anew is reopened: its tokens count, the old store's no longer do."""
    clock = [100.0]
    cache = TokenCache(data_dir, refresh_seconds=1.0, monotonic=lambda: clock[0])
    old_token = issue_token(data_dir, "read")
    assert (await cache.identify(old_token)) is not None

    for suffix in ("", "-wal", "-shm"):
        (data_dir / (DB_FILENAME + suffix)).unlink(missing_ok=True)
    clock[0] += 1.5
    # While the store is missing, the tokens read before stay in use.
    assert (await cache.identify(old_token)) is not None

    new_token = issue_token(data_dir, "read", name="fresh")
    clock[0] += 1.5
    assert await cache.identify(old_token) is None
    fresh = await cache.identify(new_token)
    assert fresh is not None
    assert fresh.name == "fresh"


async def test_token_never_logged(http: httpx.AsyncClient, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Neither a valid nor an unknown token appears in the log of rejections."""
    token = issue_token(data_dir, "read")
    caplog.set_level(logging.DEBUG)

    await http.post("/api/alerts/ack/alert_1", headers=bearer(token))
    await http.get("/api/metrics", headers=bearer("atlas_secret_guess"))

    assert "code=insufficient_scope" in caplog.text
    assert "code=invalid_token" in caplog.text
    assert "token=test" in caplog.text
    assert token not in caplog.text
    assert "atlas_secret_guess" not in caplog.text


async def test_rejections_logged_rate_limited(http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    """A flood of 60 rejected requests writes at most 20 log lines."""
    caplog.set_level(logging.WARNING, logger="atlas_tui.api.rejections")

    for _ in range(60):
        await http.get("/api/metrics")

    lines = [record for record in caplog.records if "api request rejected" in record.getMessage()]
    assert 1 <= len(lines) <= 20


async def test_foreign_host_logged(http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    """A request naming a host that is not allowed is logged once, with the host, as `invalid_host`."""
    caplog.set_level(logging.WARNING, logger="atlas_tui.api.rejections")

    response = await http.get("/api/metrics", headers={"Host": "evil.example"})

    lines = [record.getMessage() for record in caplog.records if "api request rejected" in record.getMessage()]
    assert response.status_code == 400
    assert len(lines) == 1
    assert "code=invalid_host" in lines[0]
    assert "'evil.example'" in lines[0]


def test_rejection_log_counts_left_out(caplog: pytest.LogCaptureFixture) -> None:
    """Lines over the rate are counted and the count is written with the next line."""
    caplog.set_level(logging.WARNING, logger="atlas_tui.api.rejections")
    log = RejectionLog(burst=2, window=60.0)
    rejection = Rejection(401, "missing_token", "m")

    written = [log.record(rejection, method="GET", path="/p", client="c", token=None, now=0.0) for _ in range(5)]
    later = log.record(rejection, method="GET", path="/p", client="c", token=None, now=30.0)

    assert written == [True, True, False, False, False]
    assert later is True
    assert "not_logged_before=3" in caplog.records[-1].getMessage()


def test_rejection_log_escapes_path(caplog: pytest.LogCaptureFixture) -> None:
    """A path with a line break stays on one log line."""
    caplog.set_level(logging.WARNING, logger="atlas_tui.api.rejections")

    RejectionLog().record(Rejection(401, "c", "m"), method="GET", path="/a\nforged", client="c", token=None, now=0.0)

    assert "\n" not in caplog.records[-1].getMessage()


async def test_websocket_handshake_401(app: FastAPI, data_dir: Path) -> None:
    """A WebSocket handshake without a token gets the 401 body when the server can send one."""
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket", "path": "/ws", "raw_path": b"/ws", "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "scheme": "ws", "subprotocols": [],
        "extensions": {"websocket.http.response": {}}, "asgi": {"version": "3.0"}, "root_path": "",
    }  # fmt: skip
    await app(scope, receive, send)

    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 401
    assert b"missing_token" in sent[1]["body"]  # type: ignore[operator]


def test_websocket_routes_guarded(app: FastAPI) -> None:
    """Every WebSocket route the app has needs at least the read scope."""
    for path in _websocket_paths(app):
        assert isinstance(required_access("GET", path), Scope), path


def test_openapi_documents_guard(app: FastAPI) -> None:
    """Each guarded operation in /openapi.json names the bearer scheme, its scope and the guard's responses."""
    schema = app.openapi()

    assert schema["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    for method, path, scope in _guarded(app):
        operation = schema["paths"][_template(app, method, path)][method.lower()]
        assert operation["security"] == [{"bearerAuth": []}], (method, path)
        assert operation["x-atlas-scope"] == str(scope), (method, path)
        assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)
    assert "security" not in schema["paths"][INGEST_PATH]["post"]


def _template(app: FastAPI, method: str, path: str) -> str:
    for route in iter_route_contexts(app.routes):
        if route.path and route.methods and method in route.methods and _PARAM.sub("x", route.path) == path:
            return route.path
    raise AssertionError(f"no route for {method} {path}")
