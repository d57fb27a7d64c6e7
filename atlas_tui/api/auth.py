"""Bearer-token authentication, scopes, rate limits and the body limit of the API, as one ASGI middleware.

`atlas_tui.api.security` installs `ApiGuard` inside the Host check and CORS. For
every HTTP request and WebSocket handshake it looks up what the path needs in
`atlas_tui.api.access`, then checks in order: the client address's rate, the
`Authorization: Bearer` token, the token's scope, the token's rate and the body
size. Only then does the route run. The analytics ingest route skips all of this,
because it checks its app's ingest key, body limit and rates itself.

Invariants: this applies on loopback too. Tokens are compared as SHA-256 digests with
`hmac.compare_digest` against every active token, so the time taken does not depend
on where a digest differs. A token is never logged or echoed. The token table is
cached for `refresh_seconds` (1 s), so a revoked token stops working within about a
second. Routes learn the caller's token name from `request.state.api_token`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
from fastapi import Request
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from atlas_tui.analytics.errors import RateLimitedError
from atlas_tui.analytics.ratelimit import RateLimiter
from atlas_tui.api.access import Access, Credential, required_access
from atlas_tui.api.body_limit import body_too_large, call_with_body_limit, declared_length
from atlas_tui.api.rejections import Rejection, RejectionLog, send_rejection
from atlas_tui.api_config import ApiConfig
from atlas_tui.api_tokens import Scope, format_scopes, grants, hash_token
from storage.db import DB_FILENAME, connect
from storage.errors import StorageError
from storage.tokens import TokenRow, list_tokens

__all__ = [
    "API_ACTOR_PREFIX",
    "DEFAULT_REFRESH_SECONDS",
    "ApiGuard",
    "Caller",
    "TokenCache",
    "TokenStoreError",
    "request_actor",
]

API_ACTOR_PREFIX = "api"
"""Actor recorded for changes made through the API, followed by `:<token name>`."""

DEFAULT_REFRESH_SECONDS = 1.0
"""Seconds the token table is cached before the next request reloads it."""

REVOCATION_CHECK_SECONDS = 2.0
"""Seconds between checks that the token of an open `/ws` connection is still active.
Each check reads the token table once, so a revocation closes the feed within this time."""

REVOKED_CLOSE_CODE = 1008
"""WebSocket close code (policy violation) sent when the connection's token is revoked."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """The token a request was authenticated with."""

    name: str
    """Token name, as created with `atlas api token create --name`."""
    scopes: frozenset[str]
    """Scopes the token was granted."""


class TokenStoreError(Exception):
    """Raised by `TokenCache` when the token table cannot be read and none was read before."""


class TokenCache:
    """The active tokens of the store in `data_dir`, reloaded at most once per `refresh_seconds` unless invalidated."""

    def __init__(
        self,
        data_dir: Path,
        *,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Prepare an empty cache; the first `identify` reads the store."""
        self._path = data_dir / DB_FILENAME
        self._refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._rows: list[TokenRow] | None = None
        self._loaded_at = 0.0
        self._lock = anyio.Lock()
        # Kept open between reloads: opening the store costs about 0.5 ms of CPU,
        # and an open `/ws` connection makes the cache reload every second.
        self._store = _OpenStore()
        weakref.finalize(self, self._store.close)

    async def identify(self, token: str) -> Caller | None:
        """Return the caller whose active token is `token`, or None when no active token matches.

        Raises:
            TokenStoreError: the store cannot be read and no earlier read succeeded.
        """
        digest = hash_token(token)
        match: TokenRow | None = None
        for row in await self._current():
            # Every row is compared, so the time taken does not reveal which one matched.
            if hmac.compare_digest(row.token_hash, digest):
                match = row
        return None if match is None else Caller(match.name, frozenset(match.scopes))

    def invalidate(self) -> None:
        """Make the next `identify` reload the table, for example after a revocation in this process."""
        self._loaded_at = float("-inf")

    async def _current(self) -> list[TokenRow]:
        if self._rows is not None and self._monotonic() - self._loaded_at < self._refresh_seconds:
            return self._rows
        async with self._lock:
            if self._rows is None or self._monotonic() - self._loaded_at >= self._refresh_seconds:
                await self._reload()
        assert self._rows is not None
        return self._rows

    async def _reload(self) -> None:
        try:
            self._rows = await anyio.to_thread.run_sync(self._load)
        except TokenStoreError as err:
            if self._rows is None:
                raise
            logger.warning("api token reload failed path=%s: %s; using the tokens read before", self._path, err)
        self._loaded_at = self._monotonic()

    def _load(self) -> list[TokenRow]:
        """Read the token table, reopening the store when its file was removed or replaced. Blocking."""
        store = self._store
        if not self._path.is_file():
            store.close()
            raise TokenStoreError(f"store not found: {self._path}; start `atlas daemon` once to create it")
        try:
            conn = store.connection(self._path)
        except (OSError, StorageError) as err:
            raise TokenStoreError(f"store open failed path={self._path}: {err}") from err
        try:
            return list_tokens(conn)
        except sqlite3.Error as err:
            store.close()
            raise TokenStoreError(f"api token read failed path={self._path}: {err}") from err


class _OpenStore:
    """A store connection kept open, with a descriptor that shows when its file was replaced."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        # The descriptor's link count drops to 0 when the file is removed or renamed
        # over, even when a new file gets the old inode number.
        self._file: int | None = None

    def connection(self, path: Path) -> sqlite3.Connection:
        """Return the open connection, reopening it when the file at `path` was replaced. Blocking.

        Raises:
            OSError: the file cannot be opened.
            StorageError: the store cannot be opened.
        """
        if self._file is not None and os.fstat(self._file).st_nlink == 0:
            self.close()
        if self._conn is None:
            try:
                self._file = os.open(path, os.O_RDONLY)
                self._conn = connect(path)
            except BaseException:
                self.close()
                raise
        return self._conn

    def close(self) -> None:
        """Close the connection and the descriptor; safe to call twice."""
        conn, self._conn = self._conn, None
        file, self._file = self._file, None
        if conn is not None:
            conn.close()
        if file is not None:
            os.close(file)


@dataclass(frozen=True)
class _Request:
    """The parts of an ASGI request the guard looks at."""

    method: str
    path: str
    client: str
    bearer: str | None

    @classmethod
    def of(cls, scope: AsgiScope) -> _Request:
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        client = scope.get("client")
        return cls(method=method, path=scope["path"], client=client[0] if client else "unknown", bearer=_bearer(scope))

    def label(self, scope: AsgiScope) -> str:
        """Return the method for the log, `WS` for a WebSocket handshake."""
        return self.method if scope["type"] == "http" else "WS"


@dataclass(frozen=True)
class _Decision:
    caller: Caller | None = None
    rejection: Rejection | None = None
    reason: str | None = None


@dataclass(eq=False)
class _OpenSocket:
    """One open `/ws` connection, for the revocation watcher."""

    served: asyncio.Future[None]
    name: str
    client: str
    revoked: bool = False


class ApiGuard:
    """Pure ASGI middleware that admits a request only with the credential its path needs."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: TokenCache,
        settings: ApiConfig,
        monotonic: Callable[[], float] = time.monotonic,
        log: RejectionLog | None = None,
    ) -> None:
        """Wrap `app`, checking tokens from `tokens` and applying the limits in `settings`.

        `log` is shared with the other middleware that rejects requests, so they
        share one budget of log lines.
        """
        self.app = app
        self._tokens = tokens
        self._max_body = settings.max_body_bytes
        self._monotonic = monotonic
        self._address_limiter = _limiter("address", settings.rate_limits.per_address_per_minute)
        self._token_limiter = _limiter("token", settings.rate_limits.per_token_per_minute)
        self._log = log if log is not None else RejectionLog()
        self._sockets: dict[str, set[_OpenSocket]] = {}
        self._watcher: asyncio.Future[None] | None = None

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        """Check the request, then run the app or send the rejection."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = _Request.of(scope)
        access = required_access(request.method, request.path)
        if access is Credential.INGEST_KEY:
            await self.app(scope, receive, send)
            return

        decision = await self._admit(request, access)
        name = decision.caller.name if decision.caller is not None else None
        if decision.rejection is not None:
            await self._reject(scope, send, request, decision.rejection, name, reason=decision.reason)
            return
        if name is not None:
            scope.setdefault("state", {})["api_token"] = name
        if scope["type"] == "websocket":
            await self._serve_websocket(scope, receive, send, request, name)
        else:
            await self._call_with_body_limit(scope, receive, send, request, name)

    async def _serve_websocket(
        self, scope: AsgiScope, receive: Receive, send: Send, request: _Request, name: str | None
    ) -> None:
        """Run the WebSocket app, and close the connection once its token is revoked.

        A token is checked only at the handshake otherwise, so a revoked or leaked
        token would keep a live feed open for as long as the client stays connected.
        One watcher task checks every open connection's token once per
        `REVOCATION_CHECK_SECONDS`, each distinct token once.
        """
        served = asyncio.ensure_future(self.app(scope, receive, send))
        if request.bearer is None or name is None:
            await served
            return
        entry = _OpenSocket(served, name, request.client)
        self._sockets.setdefault(request.bearer, set()).add(entry)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.ensure_future(self._watch_sockets())
        try:
            await served
        except asyncio.CancelledError:
            if not entry.revoked:
                raise
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": REVOKED_CLOSE_CODE, "reason": "token revoked"})
        finally:
            if not served.done():
                served.cancel()
            entries = self._sockets.get(request.bearer)
            if entries is not None:
                entries.discard(entry)
                if not entries:
                    del self._sockets[request.bearer]

    async def _watch_sockets(self) -> None:
        while self._sockets:
            await asyncio.sleep(REVOCATION_CHECK_SECONDS)
            # A fresh read, so the delay to a close is at most one check interval.
            self._tokens.invalidate()
            for token, entries in list(self._sockets.items()):
                try:
                    active = await self._tokens.identify(token) is not None
                except TokenStoreError:
                    continue  # The cache keeps the last table it read; an unreadable store revokes nothing.
                if active:
                    continue
                for entry in list(entries):
                    logger.info("websocket closed: token revoked token=%s client=%s", entry.name, entry.client)
                    entry.revoked = True
                    entry.served.cancel()

    async def _call_with_body_limit(
        self, scope: AsgiScope, receive: Receive, send: Send, request: _Request, name: str | None
    ) -> None:
        """Reject a declared length over the limit at once, else run the app counting the body."""
        too_large = body_too_large(self._max_body)
        length = declared_length(scope)
        if length is not None and length > self._max_body:
            await self._reject(scope, send, request, too_large, name, close=True)
            return

        def record_rejection() -> None:
            self._record(scope, request, too_large, name)

        await call_with_body_limit(self.app, scope, receive, send, limit=self._max_body, on_reject=record_rejection)

    async def _admit(self, request: _Request, access: Access) -> _Decision:
        """Run the address rate, token, scope and token rate checks in order."""
        if access is Credential.NONE:
            return _Decision()
        assert isinstance(access, Scope)
        rejection = self._take(self._address_limiter, request.client)
        if rejection is not None:
            return _Decision(rejection=rejection)
        if request.bearer is None:
            return _Decision(rejection=_missing_token(access))
        try:
            caller = await self._tokens.identify(request.bearer)
        except TokenStoreError as err:
            # The cause names local paths, so it goes to the log, not to the client.
            return _Decision(rejection=_store_unavailable(), reason=str(err))
        if caller is None:
            return _Decision(rejection=_invalid_token(access))
        if not grants(caller.scopes, access):
            return _Decision(caller, _insufficient_scope(caller, access, request))
        return _Decision(caller, self._take(self._token_limiter, caller.name))

    def _take(self, limiter: RateLimiter | None, key: str) -> Rejection | None:
        if limiter is None:
            return None
        try:
            limiter.acquire({key}, self._monotonic())
        except RateLimitedError as err:
            return _rate_limited(err)
        return None

    async def _reject(
        self,
        scope: AsgiScope,
        send: Send,
        request: _Request,
        rejection: Rejection,
        name: str | None,
        *,
        close: bool = False,
        reason: str | None = None,
    ) -> None:
        self._record(scope, request, rejection, name, reason)
        await send_rejection(scope, send, rejection, close=close)

    def _record(
        self, scope: AsgiScope, request: _Request, rejection: Rejection, name: str | None, reason: str | None = None
    ) -> None:
        self._log.record(
            rejection,
            method=request.label(scope),
            path=request.path,
            client=request.client,
            token=name,
            reason=reason,
            now=self._monotonic(),
        )


def request_actor(request: Request) -> str:
    """Return the actor to record for a change made by `request`: `api:<token name>`, or `api` without one."""
    name = getattr(request.state, "api_token", None)
    return f"{API_ACTOR_PREFIX}:{name}" if name else API_ACTOR_PREFIX


def _limiter(kind: str, per_minute: int) -> RateLimiter | None:
    if per_minute == 0:
        return None
    # The bucket has room for 10 seconds' worth of requests, so short bursts pass.
    return RateLimiter(kind, per_minute / 60.0, max(1.0, per_minute / 6.0))


def _bearer(scope: AsgiScope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _create_hint(scope: Scope) -> str:
    return f"`atlas api token create --name NAME --scope {scope}`"


def _missing_token(scope: Scope) -> Rejection:
    return Rejection(
        401,
        "missing_token",
        f"this request needs an API token with the {scope} scope; send it as 'Authorization: Bearer <token>' "
        f"(create one with {_create_hint(scope)})",
        {"required_scope": str(scope)},
        {"WWW-Authenticate": f'Bearer realm="atlas", scope="{scope}"'},
    )


def _invalid_token(scope: Scope) -> Rejection:
    return Rejection(
        401,
        "invalid_token",
        f"the API token is unknown or revoked; this request needs a token with the {scope} scope "
        f"(create one with {_create_hint(scope)})",
        {"required_scope": str(scope)},
        {"WWW-Authenticate": f'Bearer realm="atlas", error="invalid_token", scope="{scope}"'},
    )


def _insufficient_scope(caller: Caller, scope: Scope, request: _Request) -> Rejection:
    return Rejection(
        403,
        "insufficient_scope",
        f"the token {caller.name!r} lacks the {scope} scope that {request.method} {request.path} requires; "
        f"use a token created with --scope {scope}",
        {"required_scope": str(scope), "token": caller.name, "token_scopes": format_scopes(caller.scopes)},
        {"WWW-Authenticate": f'Bearer realm="atlas", error="insufficient_scope", scope="{scope}"'},
    )


def _rate_limited(err: RateLimitedError) -> Rejection:
    retry = str(err.retry_after)
    return Rejection(
        429,
        "rate_limited",
        f"too many requests for this {err.scope}; retry after {retry} s (limits are under the config's api.rate_limits)",
        {"limit": err.scope, "retry_after": retry},
        {"Retry-After": retry},
    )


def _store_unavailable() -> Rejection:
    return Rejection(
        503,
        "token_store_unavailable",
        "cannot check API tokens because the store cannot be read; the daemon's log names the cause",
    )
