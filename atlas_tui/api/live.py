"""The live feed behind `WS /ws`: topics, one bounded queue per client, and the publishers.

`create_api` builds one `LiveHub` per app (`app.state.live`). The daemon feeds it:
the collection pipeline calls `publish_samples` after each stored cycle, and the
alert service calls `alerts_changed` after each evaluation cycle. The hub turns
those into JSON text once per message and hands the same `LiveMessage` to every
subscriber of the topic. `atlas_tui.api.ws` owns the sockets. It drains a client's
queue through the ASGI path, then attaches the connection's `FrameWriter`, after
which each message is written straight to that client's socket as one frame that
is encoded once for all clients.
Cycles stored within `COALESCE_DELAY` of each other (the system and self-health
collectors share a schedule) go out as one metrics message, because each message
costs every client a socket write.

Invariants: all hub methods run on the event loop thread. Nothing is read or
serialized for a topic without subscribers. Store reads happen in one shared task
per topic (alert events after a cycle, the status every `STATUS_INTERVAL`), never
once per client. A subscriber whose queue is full is dropped at once: its queue is
emptied and its `dropped` event set, so one slow client costs at most `QUEUE_SIZE`
messages of memory and never slows the others. A client with a frame writer counts
as full when the bytes waiting in its connection's buffer exceed `QUEUE_SIZE` frames
of the size being written.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import HTTPException
from pydantic import BaseModel

from atlas_tui.api.context import ApiContext
from atlas_tui.api.ws_frames import text_frame
from atlas_tui.cli_alerts import AlertView, EventView
from atlas_tui.config import Config
from collectors.base import Labels, Sample
from storage.alerts import AlertEventRecord, events_after, list_alerts
from storage.metrics import latest

__all__ = [
    "MAX_SUBSCRIBERS",
    "QUEUE_SIZE",
    "STATUS_INTERVAL",
    "FrameSink",
    "LiveHub",
    "LiveMessage",
    "Subscriber",
    "Topic",
]

logger = logging.getLogger(__name__)

QUEUE_SIZE = 64
"""Messages waiting for one client before it counts as too slow and is dropped. At
one metric tick a second that is about a minute of backlog."""

MAX_SUBSCRIBERS = 500
"""Clients served at once; more are turned away with close code 1013 (try again later)."""

STATUS_INTERVAL = 5.0
"""Seconds between two `status` messages."""

COALESCE_DELAY = 0.25
"""Seconds the hub waits after a stored cycle for further cycles to send with it."""


class Topic(enum.StrEnum):
    """A stream of messages a client can subscribe to."""

    METRICS = "metrics"
    """The samples of each stored collector cycle."""
    ALERTS = "alerts"
    """Alert transitions, acknowledgements and silences, after each evaluation cycle."""
    BACKUPS = "backups"
    """The latest run of each backup set, then each scheduled job's start, progress and end."""
    STATUS = "status"
    """The `GET /api/system/status` body, every `STATUS_INTERVAL` seconds."""


class LiveMessage:
    """One message of the feed: its JSON text, and its WebSocket frame once a writer needs it."""

    __slots__ = ("_frame", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The text as one WebSocket text frame, encoded on first use and shared by every client."""
        if self._frame is None:
            self._frame = text_frame(self.text)
        return self._frame


class FrameSink(Protocol):
    """Writes prepared frames to one client's connection (`atlas_tui.api.ws_frames.FrameWriter`)."""

    def write(self, frame: bytes) -> int | None:
        """Write `frame`; return the bytes waiting in the connection's buffer, None when it is closing."""


@dataclass(eq=False)
class Subscriber:
    """One client's subscription and the messages waiting for it."""

    topics: frozenset[Topic]
    """Topics the client receives."""
    names: frozenset[str] | None = None
    """Metric names the client wants from the `metrics` topic; None for all."""
    queue_size: int = QUEUE_SIZE
    """Messages that may wait before the client is dropped. With a frame writer, the
    limit is the bytes of that many frames of the size being written."""
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the queue overflowed; the socket is then closed with code 4008."""
    _queue: collections.deque[LiveMessage] = field(default_factory=collections.deque, init=False)
    _waiter: asyncio.Future[None] | None = field(default=None, init=False)
    _held: list[LiveMessage] | None = field(default=None, init=False)
    _writer: FrameSink | None = field(default=None, init=False)

    @property
    def pending(self) -> int:
        """Messages queued and not yet taken by the sender."""
        return len(self._queue)

    def wants_metric(self, name: str) -> bool:
        """Return True when a sample of metric `name` is sent to this client."""
        return self.names is None or name in self.names

    def hold(self) -> None:
        """Keep offered messages aside until `release()`, while the snapshot is read."""
        self._held = []

    def release(self) -> list[LiveMessage]:
        """Stop holding and return the messages held, oldest first."""
        held, self._held = self._held or [], None
        return held

    @property
    def attached(self) -> bool:
        """True once messages go straight to a frame writer instead of the queue."""
        return self._writer is not None

    def attach(self, writer: FrameSink) -> bool:
        """Write later messages with `writer`; return False, and change nothing, while messages wait.

        Attaching only with an empty queue and nothing held keeps the messages in order.
        """
        if self._queue or self._held is not None:
            return False
        self._writer = writer
        return True

    def offer(self, message: LiveMessage) -> bool:
        """Send or queue `message`, or hold it while the snapshot is read; return False when full."""
        if self._held is not None:
            self._held.append(message)
            return len(self._held) <= self.queue_size
        writer = self._writer
        if writer is not None:
            frame = message.frame
            buffered = writer.write(frame)
            # None: the connection is closing, and the reading task gets the disconnect.
            return buffered is None or buffered <= self.queue_size * len(frame)
        if len(self._queue) >= self.queue_size:
            return False
        self._queue.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def take(self) -> LiveMessage:
        """Wait for the oldest queued message and remove it from the queue."""
        # A deque and one future cost less per message than asyncio.Queue, which
        # matters because every message is taken once per client.
        while not self._queue:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def clear(self) -> None:
        """Drop every queued message."""
        self._queue.clear()


class LiveHub:
    """Fan live messages out to the subscribers of each topic."""

    def __init__(
        self,
        context: ApiContext,
        config: Callable[[], Config],
        *,
        status_interval: float = STATUS_INTERVAL,
        max_subscribers: int = MAX_SUBSCRIBERS,
        queue_size: int = QUEUE_SIZE,
        coalesce_delay: float = COALESCE_DELAY,
    ) -> None:
        """Prepare an empty hub; tasks start with the first subscriber that needs them.

        Args:
            context: Store location and clock, shared with the HTTP routes.
            config: Returns the current config (it changes on a reload).
            status_interval: Seconds between two `status` messages.
            max_subscribers: Clients served at once.
            queue_size: Messages that may wait for one client before it is dropped.
            coalesce_delay: Seconds to gather stored cycles into one metrics message.
        """
        self._context = context
        self._config = config
        self.status_interval = status_interval
        self.max_subscribers = max_subscribers
        self.queue_size = queue_size
        self.coalesce_delay = coalesce_delay
        self._pending: dict[tuple[str, Labels], Sample] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._subscribers: set[Subscriber] = set()
        self._alert_watermark: int | None = None
        self._alert_task: asyncio.Task[None] | None = None
        self._alerts_dirty = False
        self._status_task: asyncio.Task[None] | None = None
        self.dropped_count = 0
        """Subscribers dropped because their queue overflowed, since the app started."""

    @property
    def subscriber_count(self) -> int:
        """Clients currently subscribed."""
        return len(self._subscribers)

    @property
    def attached_count(self) -> int:
        """Clients whose messages are written to their socket as prepared frames."""
        return sum(1 for s in self._subscribers if s.attached)

    def is_full(self) -> bool:
        """Return True when no further client may subscribe."""
        return len(self._subscribers) >= self.max_subscribers

    async def subscribe(self, subscriber: Subscriber) -> None:
        """Register `subscriber` and queue a snapshot of each of its topics first.

        Messages published while the snapshot is read are held and queued after it,
        so a client sees the snapshot, then every change from that point on.
        """
        subscriber.hold()
        self._subscribers.add(subscriber)
        self._ensure_status_task()
        try:
            snapshot, top = await asyncio.to_thread(self._read_snapshot, subscriber.topics, subscriber.names)
        except BaseException:
            self.unsubscribe(subscriber)
            raise
        if top is not None and self._alert_watermark is None:
            self._alert_watermark = top
        for message in [*(LiveMessage(text) for text in snapshot), *subscriber.release()]:
            self._offer(subscriber, message)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget `subscriber`; safe to call twice."""
        self._subscribers.discard(subscriber)
        if not self._has(Topic.ALERTS):
            # The next subscriber's snapshot sets a new starting point, so hours of
            # old events are never replayed to it.
            self._alert_watermark = None

    def publish_samples(self, samples: Iterable[Sample]) -> None:
        """Send one stored collector cycle to the `metrics` subscribers after `coalesce_delay`.

        A series that appears twice before the message goes out is sent with its newer sample.
        """
        if not self._has(Topic.METRICS):
            return
        for sample in samples:
            self._pending[(sample.name, sample.labels)] = sample
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.coalesce_delay, self._send_pending)

    def publish_backup(self, event: BaseModel) -> None:
        """Send a scheduled backup job's event (`atlas_tui.backup.service.BackupEvent`) to the `backups` subscribers."""
        if not self._has(Topic.BACKUPS):
            return
        body = {"type": "backups", "snapshot": False, "event": event.model_dump(mode="json")}
        self._broadcast(Topic.BACKUPS, json.dumps(body, separators=(",", ":")))

    def alerts_changed(self) -> None:
        """Read new alert history rows in one task and send them to the `alerts` subscribers."""
        if not self._has(Topic.ALERTS):
            return
        if self._alert_task is not None and not self._alert_task.done():
            self._alerts_dirty = True
            return
        self._alert_task = asyncio.get_running_loop().create_task(self._publish_alerts(), name="live-alerts")

    # --- internals -------------------------------------------------------------------

    def _send_pending(self) -> None:
        """Send the samples gathered since the first `publish_samples` after the last message."""
        self._flush = None
        batch, self._pending = list(self._pending.values()), {}
        targets = [s for s in self._subscribers if Topic.METRICS in s.topics]
        # One message per distinct name filter; None marks a filter that matched nothing.
        messages: dict[frozenset[str] | None, LiveMessage | None] = {}
        for subscriber in targets:
            if subscriber.names not in messages:
                chosen = [s for s in batch if subscriber.wants_metric(s.name)]
                messages[subscriber.names] = LiveMessage(_metrics_message(chosen, snapshot=False)) if chosen else None
            message = messages[subscriber.names]
            if message is not None:
                self._offer(subscriber, message)

    def _has(self, topic: Topic) -> bool:
        return any(topic in s.topics for s in self._subscribers)

    def _offer(self, subscriber: Subscriber, message: LiveMessage) -> None:
        if subscriber.dropped.is_set() or subscriber.offer(message):
            return
        self.dropped_count += 1
        self.unsubscribe(subscriber)
        subscriber.clear()
        subscriber.dropped.set()
        logger.warning(
            "live client dropped, queue full queue_size=%d topics=%s dropped_total=%d",
            subscriber.queue_size,
            ",".join(sorted(subscriber.topics)),
            self.dropped_count,
        )

    def _broadcast(self, topic: Topic, text: str) -> None:
        message = LiveMessage(text)
        for subscriber in [s for s in self._subscribers if topic in s.topics]:
            self._offer(subscriber, message)

    def _read_snapshot(self, topics: frozenset[Topic], names: frozenset[str] | None) -> tuple[list[str], int | None]:
        """Read the current state of each topic, and the newest alert event id. Blocking."""
        texts: list[str] = []
        top: int | None = None
        with self._context.read_connection() as conn:
            if Topic.METRICS in topics:
                rows = [row for row in latest(conn) if names is None or row.name in names]
                samples = [Sample(row.name, row.labels, row.ts, row.value) for row in rows]
                texts.append(_metrics_message(samples, snapshot=True))
            if Topic.ALERTS in topics:
                _events, top = events_after(conn, None)
                alerts = [AlertView.from_record(record) for record in list_alerts(conn)]
                texts.append(_alerts_message([], alerts, snapshot=True))
            if Topic.BACKUPS in topics:
                texts.append(_backups_snapshot(conn))
        if Topic.STATUS in topics:
            texts.append(self._status_text())
        return texts, top

    async def _publish_alerts(self) -> None:
        while True:
            self._alerts_dirty = False
            try:
                text, self._alert_watermark = await asyncio.to_thread(self._read_alert_events, self._alert_watermark)
            except Exception as err:  # noqa: BLE001 - worker boundary: the next cycle reads again
                logger.warning("live alert events not read after_id=%s: %s", self._alert_watermark, _reason(err))
                return
            if text is not None:
                self._broadcast(Topic.ALERTS, text)
            if not self._alerts_dirty:
                return

    def _read_alert_events(self, after_id: int | None) -> tuple[str | None, int]:
        """Read the rows after `after_id`, the alerts they touched and the new watermark. Blocking."""
        with self._context.read_connection() as conn:
            events, top = events_after(conn, after_id)
            if not events:
                return None, top
            touched = {event.alert_id for event in events}
            records = list_alerts(conn, include_inactive=True)
        alerts = [AlertView.from_record(r) for r in records if r.alert_id in touched]
        return _alerts_message(events, alerts, snapshot=False), top

    def _ensure_status_task(self) -> None:
        if self._status_task is None or self._status_task.done():
            if self._has(Topic.STATUS):
                self._status_task = asyncio.get_running_loop().create_task(self._status_loop(), name="live-status")

    async def _status_loop(self) -> None:
        while self._has(Topic.STATUS):
            await asyncio.sleep(self.status_interval)
            if not self._has(Topic.STATUS):
                return
            try:
                text = await asyncio.to_thread(self._status_text)
            except Exception as err:  # noqa: BLE001 - worker boundary: retried at the next interval
                logger.warning("live status not read, retrying in %g s: %s", self.status_interval, _reason(err))
                continue
            self._broadcast(Topic.STATUS, text)

    def _status_text(self) -> str:
        # Imported here: atlas_tui.api.system imports this module's neighbours.
        from atlas_tui.api.system import build_status

        status = build_status(self._context, self._config())
        return json.dumps({"type": "status", "status": status.model_dump(mode="json")}, separators=(",", ":"))


def _reason(err: Exception) -> str:
    return str(err.detail) if isinstance(err, HTTPException) else f"{type(err).__name__}: {err}"


def _backups_snapshot(conn: sqlite3.Connection) -> str:
    # Imported here: atlas_tui.api.system imports this module's neighbours.
    from atlas_tui.api.system import backup_infos

    sets = [info.model_dump(mode="json") for info in backup_infos(conn)]
    return json.dumps({"type": "backups", "snapshot": True, "sets": sets}, separators=(",", ":"))


def _metrics_message(samples: list[Sample], *, snapshot: bool) -> str:
    items = [{"name": s.name, "labels": dict(s.labels), "ts": s.ts, "value": s.value} for s in samples]
    return json.dumps({"type": "metrics", "snapshot": snapshot, "samples": items}, separators=(",", ":"))


def _alerts_message(events: list[AlertEventRecord], alerts: list[AlertView], *, snapshot: bool) -> str:
    body = {
        "type": "alerts",
        "snapshot": snapshot,
        "events": [_event_item(event) for event in events],
        "alerts": [alert.model_dump(mode="json") for alert in alerts],
    }
    return json.dumps(body, separators=(",", ":"))


def _event_item(event: AlertEventRecord) -> dict[str, object]:
    item: dict[str, object] = {
        "event_id": event.event_id,
        "alert_id": event.alert_id,
        "fingerprint": event.fingerprint,
        "rule_id": event.rule_id,
    }
    item.update(EventView.from_record(event).model_dump(mode="json"))
    return item
