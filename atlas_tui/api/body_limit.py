"""Request body size limit for the API, enforced while the body arrives.

`ApiGuard` (`atlas_tui.api.auth`) rejects a request whose `Content-Length` is over
the limit before the app runs, and passes every other request through
`call_with_body_limit`, which counts the body chunks the app receives. Invariants:
at most `limit` bytes plus one chunk of the server's are ever handed on. Once a body
passes the limit, the client gets one 413 response with `Connection: close`, and the
app receives a disconnect, so it stops reading and its own response is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from atlas_tui.api.rejections import Rejection, send_rejection

__all__ = ["body_too_large", "call_with_body_limit", "declared_length"]


def declared_length(scope: AsgiScope) -> int | None:
    """Return the request's `Content-Length`, or None when it is absent or not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def body_too_large(limit: int) -> Rejection:
    """Return the 413 rejection for a body over `limit` bytes."""
    return Rejection(
        413,
        "body_too_large",
        f"the request body is larger than the limit of {limit} bytes; send a smaller body "
        "(the daemon's limit is the config's api.max_body_bytes)",
        {"limit_bytes": str(limit)},
    )


@dataclass
class _Progress:
    received: int = 0
    response_started: bool = False
    cut: bool = False
    """The body passed the limit, so the app gets a disconnect from now on."""
    rejected: bool = False
    """The 413 was sent, so the app's own response is dropped."""


async def call_with_body_limit(
    app: ASGIApp, scope: AsgiScope, receive: Receive, send: Send, *, limit: int, on_reject: Callable[[], None]
) -> None:
    """Run `app` for one HTTP request, responding 413 once its body passes `limit` bytes.

    `on_reject` is called once when the 413 is sent, so the caller can log it.
    """
    progress = _Progress()

    async def limited_receive() -> Message:
        if progress.cut:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] != "http.request":
            return message
        progress.received += len(message.get("body", b""))
        if progress.received <= limit:
            return message
        progress.cut = True
        if not progress.response_started:
            progress.rejected = True
            await send_rejection(scope, send, body_too_large(limit), close=True)
            on_reject()
        return {"type": "http.disconnect"}

    async def guarded_send(message: Message) -> None:
        if progress.rejected:
            return
        if message["type"] == "http.response.start":
            progress.response_started = True
        await send(message)

    await app(scope, limited_receive, guarded_send)
