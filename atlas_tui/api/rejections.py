"""Responses for requests the API's guard rejects, and the rate-limited log of them.

`ApiGuard` (`atlas_tui.api.auth`) builds one `Rejection` per refused request, sends it
with `send_rejection` and records it once with `RejectionLog`. The body has the shape
every `/api` error uses, `{"error": {"code", "message", "details"}}`. Invariants: a
token never reaches a message, a detail or the log, and neither does the query
string, which may carry secrets. The log writes at most `burst` lines per `window`
seconds and counts the lines it left out in the next one, so a flood of bad requests
cannot fill the disk.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from starlette.types import Scope as AsgiScope
from starlette.types import Send

__all__ = ["Rejection", "RejectionLog", "send_rejection"]

logger = logging.getLogger(__name__)

_POLICY_VIOLATION = 1008
"""WebSocket close code for a refused handshake when the server cannot send an HTTP response."""


@dataclass(frozen=True)
class Rejection:
    """One refused request: status, error body and extra headers."""

    status: int
    """HTTP status code: 401, 403, 413, 429 or 503."""
    code: str
    """Stable machine-readable code, such as `missing_token`."""
    message: str
    """Sentence for people that names the failure and its fix."""
    details: dict[str, str] = field(default_factory=dict)
    """The values involved, such as `{"required_scope": "ack"}`."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers, such as `WWW-Authenticate` or `Retry-After`."""

    def body(self) -> bytes:
        """Return the JSON error body."""
        error = {"code": self.code, "message": self.message, "details": self.details}
        return json.dumps({"error": error}).encode("utf-8")


async def send_rejection(scope: AsgiScope, send: Send, rejection: Rejection, *, close: bool = False) -> None:
    """Send `rejection` as the response to an HTTP request or WebSocket handshake.

    A WebSocket handshake gets the HTTP response when the server supports the
    denial-response extension (uvicorn does), else a close with code 1008.
    `close` adds `Connection: close`, for a response sent before the body was read.
    """
    body = rejection.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in rejection.headers.items()]
    if close:
        headers.append((b"connection", b"close"))
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": rejection.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": rejection.code})


class RejectionLog:
    """Log refused requests at WARNING, at most `burst` lines per `window` seconds."""

    def __init__(self, *, burst: int = 20, window: float = 60.0) -> None:
        """Allow `burst` lines at once, refilled evenly over `window` seconds."""
        self._burst = float(burst)
        self._rate = burst / window
        self._allowance = float(burst)
        self._updated: float | None = None
        self._left_out = 0

    def record(
        self,
        rejection: Rejection,
        *,
        method: str,
        path: str,
        client: str,
        token: str | None,
        now: float,
        reason: str | None = None,
    ) -> bool:
        """Log one refused request unless over the rate, and return True if a line was written.

        Args:
            rejection: The response sent.
            method: Request method, `WS` for a WebSocket handshake.
            path: Request path without the query string.
            client: Client address.
            token: Name of the presented token when it was recognised, never the token.
            now: Monotonic seconds.
            reason: Cause kept out of the response, such as a store error naming a path.
        """
        if self._updated is not None:
            self._allowance = min(self._burst, self._allowance + (now - self._updated) * self._rate)
        self._updated = now
        if self._allowance < 1.0:
            self._left_out += 1
            return False
        self._allowance -= 1.0
        logger.warning(
            "api request rejected status=%d code=%s method=%s path=%s client=%s token=%s not_logged_before=%d%s",
            rejection.status,
            rejection.code,
            method,
            _printable(path),
            client,
            token or "-",
            self._left_out,
            f": {reason}" if reason else "",
        )
        self._left_out = 0
        return True


_MAX_LOGGED_PATH = 200


def _printable(path: str) -> str:
    """Return `path` cut to 200 characters with control and non-ASCII characters escaped, so it stays one log line."""
    return path[:_MAX_LOGGED_PATH].encode("unicode_escape").decode("ascii")
