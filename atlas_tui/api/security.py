"""The API's middleware stack: HSTS, the Host check, CORS and the token guard, in that order.

`create_api` calls `install_security` once. From the outside in, a request passes:

1. HSTS, which adds `Strict-Transport-Security` to every response when TLS is on.
2. `HostCheck`, which responds 400 to a Host header name not allowed, and logs it.
3. CORS, only for `api.cors_origins`.
4. `ApiGuard`: tokens, scopes, rate limits and the body limit.
5. The routes.

The Host check runs before the guard, so a page that rebinds its DNS name to
127.0.0.1 is rejected before any token is looked at. CORS runs outside the guard, so
preflight requests, which carry no token, get their response, and 401 responses
still carry CORS headers for an allowed origin.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from atlas_tui.api.access import required_access
from atlas_tui.api.alerts import ErrorBody
from atlas_tui.api.auth import ApiGuard, TokenCache
from atlas_tui.api.rejections import Rejection, RejectionLog
from atlas_tui.api_config import ApiConfig
from atlas_tui.api_tokens import Scope

__all__ = ["HSTS_VALUE", "HostCheck", "HstsMiddleware", "install_security"]

HSTS_VALUE = "max-age=31536000"
"""`Strict-Transport-Security` value sent when TLS is on: one year, this host only."""

_CORS_MAX_AGE = 600
"""Seconds a browser may cache a preflight response."""


def install_security(app: FastAPI, data_dir: Path, settings: ApiConfig, allowed_hosts: Sequence[str]) -> None:
    """Add the guard, CORS, the Host check and HSTS to `app`, innermost first.

    Args:
        app: The app from `create_api`, before it serves.
        data_dir: Data directory whose store contains the tokens.
        settings: The config's `api` section.
        allowed_hosts: Host header values accepted; `*` accepts any.

    The token cache is kept on `app.state.token_cache`, and the OpenAPI schema
    documents the bearer scheme and the guard's responses on each operation.
    """
    tokens = TokenCache(data_dir)
    app.state.token_cache = tokens
    log = RejectionLog()
    app.add_middleware(ApiGuard, tokens=tokens, settings=settings, log=log)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            max_age=_CORS_MAX_AGE,
        )
    app.add_middleware(HostCheck, allowed_hosts=list(allowed_hosts), log=log)
    if settings.tls:
        app.add_middleware(HstsMiddleware)
    _document_security(app)


class HostCheck(TrustedHostMiddleware):
    """Starlette's Host header check (400 for other names), logging each request it rejects."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str], log: RejectionLog) -> None:
        """Wrap `app`, admitting only `allowed_hosts` and logging rejections to `log`."""
        super().__init__(_mark_admitted(app), allowed_hosts=allowed_hosts, www_redirect=False)
        self._log = log

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        """Run Starlette's check, then log the request if it never reached the app."""
        await super().__call__(scope, receive, send)
        if scope["type"] not in ("http", "websocket") or scope.get(_ADMITTED):
            return
        host = Headers(scope=scope).get("host", "")
        client = scope.get("client")
        self._log.record(
            _INVALID_HOST,
            method=scope.get("method", "GET") if scope["type"] == "http" else "WS",
            path=scope["path"],
            client=client[0] if client else "unknown",
            token=None,
            now=time.monotonic(),
            reason=f"host {host[:100]!r} is not in api.allowed_hosts",
        )


class HstsMiddleware:
    """Pure ASGI middleware that adds `Strict-Transport-Security` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        """Run the app, adding the header to its response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("Strict-Transport-Security", HSTS_VALUE)
            await send(message)

        await self.app(scope, receive, send_with_header)


_BEARER = "bearerAuth"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_GUARD_RESPONSES = {
    "401": "No token, or an unknown or revoked one.",
    "403": "The token lacks the scope named in `details.required_scope`.",
    "413": "The body is larger than `api.max_body_bytes`.",
    "429": "Over a per-token or per-address rate; see Retry-After.",
    "503": "The store cannot be read: the token table (`token_store_unavailable`) or the route's data (`store_unavailable`).",
}
"""Responses the guard adds to every operation that needs a token. The 503 also covers the
routes' own store errors, which `atlas_tui.api.errors` renders in the same shape."""


def _document_security(app: FastAPI) -> None:
    """Add the bearer scheme, each operation's scope and the guard's error responses to the OpenAPI schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})[_BEARER] = {"type": "http", "scheme": "bearer"}
        if "ErrorBody" not in components.setdefault("schemas", {}):
            error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            components["schemas"].update(error.pop("$defs", {}))
            components["schemas"]["ErrorBody"] = error
        for path, operations in schema.get("paths", {}).items():
            for method in _METHODS:
                if method in operations:
                    _document_operation(operations[method], required_access(method.upper(), path))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_operation(operation: dict[str, Any], access: object) -> None:
    if not isinstance(access, Scope):
        return
    # HTTP bearer schemes list no scopes in OpenAPI 3, so the scope goes into an extension.
    operation["security"] = [{_BEARER: []}]
    operation["x-atlas-scope"] = str(access)
    responses = operation.setdefault("responses", {})
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for status, description in _GUARD_RESPONSES.items():
        responses.setdefault(status, {"description": description, "content": body})


_ADMITTED = "atlas.host_admitted"
"""ASGI scope key set once a request passes the Host check."""

_INVALID_HOST = Rejection(400, "invalid_host", "Invalid host header")
"""Log entry of a `HostCheck` rejection. The client gets Starlette's own plain-text body."""


def _mark_admitted(app: ASGIApp) -> ASGIApp:
    async def admitted(scope: AsgiScope, receive: Receive, send: Send) -> None:
        scope[_ADMITTED] = True
        await app(scope, receive, send)

    return admitted
