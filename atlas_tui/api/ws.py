"""`WS /ws`: the live feed of metric ticks, alert transitions and status over one WebSocket.

A client connects, sends a subscribe message within `SUBSCRIBE_TIMEOUT` seconds,

    {"type": "subscribe", "topics": ["metrics", "alerts"], "names": ["cpu_usage"]}

and receives `{"type": "subscribed", ...}`, a snapshot per topic, then every change
as JSON text (`atlas_tui.api.live` builds the messages). A later subscribe message
replaces the subscription. The server closes the socket with:

- 1008 (policy violation) when a message is not a valid subscribe message, with the
  problem as the close reason;
- 4008 when the client reads too slowly and its queue of `QUEUE_SIZE` messages filled;
- 1013 (try again later) when `MAX_SUBSCRIBERS` clients are already connected;
- 1011 when the store cannot be read for the snapshot;
- 1012 when the daemon stops (sent by uvicorn).

Invariants: each connection has one task that sends from its queue and one loop that
reads the client's messages. Neither ever waits on another client. Once the queue is
empty after the snapshot, the sending task attaches the connection's frame writer
(`atlas_tui.api.ws_frames`), and the hub writes later messages to the socket itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Literal

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocketState

from atlas_tui.api.live import FrameSink, LiveHub, Subscriber, Topic
from atlas_tui.api.ws_frames import FRAME_WRITER_EXTENSION

__all__ = [
    "CLOSE_INVALID",
    "CLOSE_SLOW",
    "CLOSE_STORE",
    "CLOSE_TRY_LATER",
    "MAX_MESSAGE_BYTES",
    "SUBSCRIBE_TIMEOUT",
    "SubscribeMessage",
    "router",
]

logger = logging.getLogger(__name__)

CLOSE_INVALID = 1008
"""Close code for a message that is not a valid subscribe message."""
CLOSE_STORE = 1011
"""Close code when the snapshot cannot be read from the store."""
CLOSE_TRY_LATER = 1013
"""Close code when the hub already serves its maximum number of clients."""
CLOSE_SLOW = 4008
"""Close code for a client whose queue overflowed because it read too slowly."""

SUBSCRIBE_TIMEOUT = 10.0
"""Seconds a new connection may take to send its first subscribe message."""

MAX_MESSAGE_BYTES = 4096
"""Largest client message accepted; a subscribe message needs far less."""

CLOSE_TIMEOUT = 5.0
"""Seconds the close frame may wait behind unread data before the handler gives up.
Uvicorn then closes the connection once its write buffer drains. That buffer stops
growing at asyncio's high-water mark (64 KiB by default) plus one message."""

_REASON_BYTES = 123
"""A close reason longer than this does not fit in a WebSocket control frame."""

router = APIRouter(tags=["live"])


class SubscribeMessage(BaseModel):
    """The one message a client sends: which topics it wants."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern="^subscribe$")
    """Always `subscribe`."""
    topics: list[Topic] = Field(min_length=1, max_length=len(Topic))
    """Topics to receive: `metrics`, `alerts`, `backups`, `status`."""
    names: list[str] | None = Field(default=None, max_length=200)
    """Metric names for the `metrics` topic; absent or null for every metric."""


_Ending = Literal["slow", "closed"]
"""`slow`: the subscriber was dropped for a full queue; `closed`: the client left."""


class _InvalidMessage(Exception):
    """Raised by the reader when a client message is not a valid subscribe message."""


@router.websocket("/ws")
async def live_feed(websocket: WebSocket) -> None:
    """Serve one client: subscribe, then send queued messages until either side closes."""
    hub: LiveHub = websocket.app.state.live
    await websocket.accept()
    if hub.is_full():
        await _close(websocket, CLOSE_TRY_LATER, f"server busy: {hub.max_subscribers} clients connected; retry later")
        return
    try:
        first = await asyncio.wait_for(_read_subscribe(websocket), SUBSCRIBE_TIMEOUT)
    except TimeoutError:
        await _close(websocket, CLOSE_INVALID, f"no subscribe message within {SUBSCRIBE_TIMEOUT:g} s")
        return
    except _InvalidMessage as err:
        await _close(websocket, CLOSE_INVALID, str(err))
        return
    except WebSocketDisconnect:
        return
    await _serve(websocket, hub, first)


async def _serve(websocket: WebSocket, hub: LiveHub, message: SubscribeMessage) -> None:
    while True:
        subscriber = _subscriber(message, hub.queue_size)
        try:
            await hub.subscribe(subscriber)
        except HTTPException as err:
            await _close(websocket, CLOSE_STORE, f"store unavailable: {err.detail}")
            return
        try:
            await websocket.send_text(_subscribed_text(subscriber))
            outcome = await _pump(websocket, subscriber)
        except WebSocketDisconnect:
            return
        finally:
            hub.unsubscribe(subscriber)
        if not isinstance(outcome, SubscribeMessage):
            break
        message = outcome

    if isinstance(outcome, _InvalidMessage):
        await _close(websocket, CLOSE_INVALID, str(outcome))
    elif outcome == "slow":
        await _close(websocket, CLOSE_SLOW, f"client too slow: more than {subscriber.queue_size} messages queued")


async def _pump(websocket: WebSocket, subscriber: Subscriber) -> SubscribeMessage | _InvalidMessage | _Ending:
    """Send queued messages until the client leaves, is dropped or subscribes anew.

    Returns the new subscribe message, the invalid message's error, or how the
    connection ended.
    """
    sender = asyncio.create_task(_send_queue(websocket, subscriber), name="live-send")
    reader = asyncio.create_task(_read_subscribe(websocket), name="live-read")
    dropped = asyncio.create_task(subscriber.dropped.wait())
    try:
        await asyncio.wait({sender, reader, dropped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, reader, dropped):
            task.cancel()
        await asyncio.gather(sender, reader, dropped, return_exceptions=True)

    if dropped.done() and not dropped.cancelled():
        return "slow"
    if reader.done() and not reader.cancelled():
        error = reader.exception()
        if error is None:
            return reader.result()
        if isinstance(error, _InvalidMessage):
            return error
    for task in (sender, reader):
        _log_unexpected(task)
    return "closed"


def _log_unexpected(task: asyncio.Task[object]) -> None:
    """Log a task's error unless it only means that the client went away."""
    if not task.done() or task.cancelled():
        return
    error = task.exception()
    if error is not None and not isinstance(error, (WebSocketDisconnect, OSError, _InvalidMessage)):
        logger.warning("live client task failed task=%s: %s", task.get_name(), error, exc_info=error)


async def _send_queue(websocket: WebSocket, subscriber: Subscriber) -> None:
    writer: FrameSink | None = websocket.scope.get("extensions", {}).get(FRAME_WRITER_EXTENSION)
    while True:
        if writer is not None and not subscriber.attached:
            subscriber.attach(writer)
        message = await subscriber.take()
        await websocket.send_text(message.text)


async def _read_subscribe(websocket: WebSocket) -> SubscribeMessage:
    """Wait for the next client message and parse it as a subscribe message.

    Raises:
        _InvalidMessage: the message is binary, too large, not JSON or not a valid
            subscribe message.
        WebSocketDisconnect: the client closed the connection.
    """
    event = await websocket.receive()
    if event["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(event.get("code", 1000))
    text = event.get("text")
    if text is None:
        raise _InvalidMessage("binary messages are not accepted; send a JSON subscribe message as text")
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        raise _InvalidMessage(f"message over {MAX_MESSAGE_BYTES} bytes; a subscribe message is much shorter")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise _InvalidMessage('message is not JSON; send {"type": "subscribe", "topics": ["metrics"]}') from None
    try:
        return SubscribeMessage.model_validate(data)
    except ValidationError as err:
        raise _InvalidMessage(_describe(err)) from None


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    if first["type"] == "enum":
        return f"invalid {where}: use topics from {', '.join(Topic)}"
    if first["type"] == "string_pattern_mismatch":
        return 'invalid type: the message type must be "subscribe"'
    return f"invalid {where}: {first['msg']}"


def _subscriber(message: SubscribeMessage, queue_size: int) -> Subscriber:
    names = frozenset(message.names) if message.names is not None else None
    return Subscriber(topics=frozenset(message.topics), names=names, queue_size=queue_size)


def _subscribed_text(subscriber: Subscriber) -> str:
    names = sorted(subscriber.names) if subscriber.names is not None else None
    body = {"type": "subscribed", "topics": sorted(subscriber.topics), "names": names}
    return json.dumps(body, separators=(",", ":"))


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with `code` and `reason`, giving up after `CLOSE_TIMEOUT` behind unread data."""
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    reason = reason.encode()[:_REASON_BYTES].decode(errors="ignore")
    logger.info("live client closed code=%d reason=%s", code, reason)
    try:
        await asyncio.wait_for(websocket.close(code=code, reason=reason), CLOSE_TIMEOUT)
    except TimeoutError:
        logger.warning("live client close timed out code=%d; the client stopped reading", code)
    except (RuntimeError, WebSocketDisconnect) as err:
        # The client left while the close frame was on its way.
        logger.debug("live client gone before close code=%d: %s", code, err)
