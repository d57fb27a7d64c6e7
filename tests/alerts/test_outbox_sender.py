"""The outbox sender against real receivers on 127.0.0.1: pacing, Retry-After, order, held rows, restarts.

Each test queues notices in a real store in `tmp_path`, runs `OutboxSender.run()`
on the test's event loop and watches the receivers, which run in their own threads.
Rates, timeouts and backoff are scaled down (tens of milliseconds instead of
seconds) so the whole module stays fast; the pacing rules are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from atlas_tui.alerts.channels.http_delivery import new_client
from atlas_tui.alerts.channels.message import Notice
from atlas_tui.alerts.outbox import OutboxSender
from atlas_tui.config import Config
from storage.db import open_store
from storage.outbox import (
    MAX_NOTICE_AGE,
    OutboxItem,
    channel_health,
    dead_letters,
    deliveries_for_alert,
    delivery_attempts,
    enqueue,
)
from tests.alerts.receivers import (
    HttpReceiver,
    RecordedRequest,
    Reply,
    SilentServer,
    StallingSmtpHandler,
    running_smtp,
    sample_notice,
)

SLACK_ENV = "ATLAS_TEST_OUTBOX_SLACK_URL"


class NoJitter(random.Random):
    """A random source whose `random()` is always 0, so every backoff is exact."""

    def random(self) -> float:
        return 0.0


class PacedReceiver(HttpReceiver):
    """A Slack-like receiver: one request per `spacing` seconds, HTTP 429 with `Retry-After` otherwise.

    Requests numbered in `limit_requests` (from 1) and every request before
    `limited_until` (monotonic seconds) also get the 429. `arrivals` records
    (monotonic time, notice key, status) for every request.
    """

    def __init__(self, spacing: float, retry_after: str) -> None:
        super().__init__()
        self.spacing = spacing
        self.retry_after = retry_after
        self.limit_requests: set[int] = set()
        self.limited_until = 0.0
        self.arrivals: list[tuple[float, str, int]] = []
        self._last_accepted = -math.inf
        self._guard = threading.Lock()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._guard:
            self.requests.append(request)
            now = time.monotonic()
            limited = (
                len(self.requests) in self.limit_requests
                or now < self.limited_until
                or now - self._last_accepted < self.spacing
            )
            reply = Reply(429, b"rate_limited", {"Retry-After": self.retry_after}) if limited else Reply()
            if not limited:
                self._last_accepted = now
            self.arrivals.append((now, notice_key(request), reply.status))
            return reply

    def accepted(self) -> list[str]:
        """Keys of the notices accepted with HTTP 200, in arrival order."""
        with self._guard:
            return [key for _at, key, status in self.arrivals if status == 200]


def notice_key(request: RecordedRequest) -> str:
    """Identify a notice in a request: the webhook's `webhook-id`, or the Slack message's `text`."""
    if "webhook-id" in request.headers:
        return request.headers["webhook-id"]
    return str(json.loads(request.body)["text"])


def make_notice(index: int, **overrides: Any) -> Notice:
    """A critical firing notice for rule `disk_<index>` with its own fingerprint."""
    fields: dict[str, Any] = {
        "notice_id": f"ntc_{index:03d}",
        "rule_id": f"disk_{index:02d}",
        "rule_name": "",
        "fingerprint": f"{index:016x}",
        "labels": {"mount": f"/data{index:02d}"},
        "created_at": time.time(),
    }
    fields.update(overrides)
    return sample_notice(**fields)


def queue(data_dir: Path, channel: str, notices: list[Notice], *, alert_id: str = "alert_1") -> None:
    """Queue notices for one channel, as the alert service does after a transition."""
    conn = open_store(data_dir)
    try:
        enqueue(conn, [
            OutboxItem(notice.notice_id, channel, notice.kind, alert_id, notice.fingerprint,
                       notice.model_dump_json(), notice.created_at or time.time())
            for notice in notices
        ])
    finally:
        conn.close()


def make_sender(data_dir: Path, channels: dict[str, Any], **options: Any) -> OutboxSender:
    """A sender with test-sized polling, backoff and stop grace, and no syslog fallback."""
    settings: dict[str, Any] = {"poll_interval": 0.1, "rng": NoJitter(), "backoff_cap": 0.3,
                                "stop_grace": 0.5, "fallback": False}
    settings.update(options)
    return OutboxSender(Config.model_validate({"channels": channels}), data_dir, **settings)


@asynccontextmanager
async def running(sender: OutboxSender) -> AsyncIterator[OutboxSender]:
    """Run the sender for the block, then stop it and wait for `run()` to return."""
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        await asyncio.wait_for(sender.stop(), timeout=10)
        await asyncio.wait_for(task, timeout=5)


async def eventually(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` without blocking the event loop until it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


def statuses(data_dir: Path, channel: str) -> Counter[str]:
    """Count the channel's outbox rows by status."""
    conn = open_store(data_dir)
    try:
        rows = conn.execute("SELECT status FROM outbox WHERE channel = ?", (channel,)).fetchall()
    finally:
        conn.close()
    return Counter(row[0] for row in rows)


def read(data_dir: Path, function: Callable[..., Any], *args: Any) -> Any:
    """Call a read-only store function on a fresh connection."""
    conn = open_store(data_dir)
    try:
        return function(conn, *args)
    finally:
        conn.close()


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    """Config of a webhook channel."""
    return {"type": "webhook", "url": url, **extra}


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A receiver returning 200 unless scripted otherwise."""
    with HttpReceiver() as running_receiver:
        yield running_receiver


# --- rate limits: the channel's cap, Retry-After, a long run of 429 -----------------------


@pytest.mark.parametrize("kind", ["slack", "webhook"])
async def test_backlog_paced_at_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """20 notices queued at once arrive exactly once each, at most 10 per second, honouring Retry-After.

    The receiver accepts one request per 70 ms and rejects its 5th request with
    429 `Retry-After: 1`, like Slack above its limit. The cap is checked on the
    times the sender started its requests, with 20 ms of slack for the steps between
    the limiter and the request. On a loaded host a request can take tens of
    milliseconds to reach the receiver, so gaps between arrivals can be shorter.
    """
    starts: list[float] = []

    async def record_start(_request: httpx.Request) -> None:
        starts.append(time.monotonic())

    def timed_client(_config: object) -> httpx.AsyncClient:
        client = new_client()
        client.event_hooks = {"request": [record_start]}
        return client

    with PacedReceiver(spacing=0.07, retry_after="1") as slack:
        slack.limit_requests = {5}
        monkeypatch.setenv(SLACK_ENV, slack.url)
        channel = ({"type": "slack", "webhook_url_env": SLACK_ENV, "rate_per_second": 10} if kind == "slack"
                   else webhook(slack.url, rate_per_second=10))
        notices = [make_notice(index) for index in range(20)]
        queue(tmp_path, "chat", notices)

        async with running(make_sender(tmp_path, {"chat": channel}, client_factory=timed_client)):
            assert await eventually(lambda: statuses(tmp_path, "chat")["delivered"] == 20, timeout=15)

        arrivals = list(slack.arrivals)
        accepted = Counter(slack.accepted())

    assert len(accepted) == 20
    assert set(accepted.values()) == {1}
    assert len(starts) == len(arrivals)
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 0.08
    assert max(sum(1 for t in starts if start <= t < start + 0.95) for start in starts) <= 10
    for index, (at, _key, status) in enumerate(arrivals[:-1]):
        if status == 429:
            assert arrivals[index + 1][0] - at >= 0.99


async def test_long_429_degrades(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 caplog: pytest.LogCaptureFixture) -> None:
    """A channel returning 429 for a long stretch is degraded, keeps every notice and logs only a few lines."""
    caplog.set_level(logging.INFO, logger="atlas_tui.alerts.outbox")
    with PacedReceiver(spacing=0.0, retry_after="0.1") as slack:
        slack.limited_until = time.monotonic() + 2.0
        monkeypatch.setenv(SLACK_ENV, slack.url)
        queue(tmp_path, "slack", [make_notice(index) for index in range(5)])

        async with running(make_sender(tmp_path, {"slack": {"type": "slack", "webhook_url_env": SLACK_ENV,
                                                             "rate_per_second": 20}})):
            assert await eventually(lambda: len(slack.arrivals) >= 5, timeout=5)
            [during] = read(tmp_path, channel_health, time.time())
            during_rows = statuses(tmp_path, "slack")
            assert await eventually(lambda: statuses(tmp_path, "slack")["delivered"] == 5, timeout=10)

        limited = sum(1 for _at, _key, status in slack.arrivals if status == 429)
        accepted = Counter(slack.accepted())

    warnings = [r for r in caplog.records if r.name == "atlas_tui.alerts.outbox" and r.levelno >= logging.WARNING]
    assert during.state == "degraded"
    assert during.queue_depth == 5
    assert during_rows == Counter(pending=5)
    assert limited >= 10
    assert len(warnings) <= 2
    assert set(accepted.values()) == {1}
    assert len(accepted) == 5


# --- delivery order per alert behind a 429 ------------------------------------------------


async def test_resolve_follows_firing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A firing notice rejected with 429 `Retry-After: 1` is retried after 1 s; its resolve follows it, never before."""
    with PacedReceiver(spacing=0.0, retry_after="1") as slack:
        slack.limit_requests = {1}
        monkeypatch.setenv(SLACK_ENV, slack.url)
        created = time.time()
        firing = make_notice(1, created_at=created)
        resolved = make_notice(1, notice_id="ntc_001_resolved", kind="resolved", ends_at=created,
                               created_at=created + 0.001)
        queue(tmp_path, "slack", [firing, resolved])

        async with running(make_sender(tmp_path, {"slack": {"type": "slack", "webhook_url_env": SLACK_ENV,
                                                             "rate_per_second": 10}})):
            assert await eventually(lambda: statuses(tmp_path, "slack")["delivered"] == 2, timeout=5)

        arrivals = list(slack.arrivals)

    kinds = [key.split("]")[0] for _at, key, _status in arrivals]
    assert kinds == ["[FIRING", "[FIRING", "[RESOLVED"]
    assert [status for _at, _key, status in arrivals] == [429, 200, 200]
    assert arrivals[1][0] - arrivals[0][0] >= 0.99


# --- 4xx config errors, 5xx retries, the 24 h dead-letter limit ---------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_error_holds(tmp_path: Path, receiver: HttpReceiver, status: int) -> None:
    """A 4xx config error moves the notice to held, marks the channel misconfigured with the body, and stops it.

    Restarting with a changed channel config releases the held notice.
    """
    receiver.default = Reply(status=status, body=b"no such hook: check the token")
    queue(tmp_path, "ops", [make_notice(1)])
    channel = webhook(receiver.url, timeout=2)

    async with running(make_sender(tmp_path, {"ops": channel})) as sender:
        assert await eventually(lambda: statuses(tmp_path, "ops")["held"] == 1, timeout=5)
        queue(tmp_path, "ops", [make_notice(2)])
        sender.wake()
        # Five poll intervals in which a retry or the second notice would have gone out.
        await asyncio.sleep(0.5)
        [health] = read(tmp_path, channel_health, time.time())
        sent_while_held = len(receiver.requests)

    receiver.default = Reply()
    async with running(make_sender(tmp_path, {"ops": {**channel, "timeout": 3}})):
        assert await eventually(lambda: statuses(tmp_path, "ops")["delivered"] == 2, timeout=5)

    assert health.state == "misconfigured"
    assert health.http_status == status
    assert health.response_body == "no such hook: check the token"
    assert health.queue_depth == 2
    assert sent_while_held == 1


async def test_server_error_retried(tmp_path: Path, receiver: HttpReceiver) -> None:
    """503 and 502 are retried after the backoff; the third attempt delivers and the channel is ok again."""
    receiver.script(Reply(status=503, body=b"down"), Reply(status=502, body=b"bad gateway"))
    queue(tmp_path, "ops", [make_notice(1)])

    async with running(make_sender(tmp_path, {"ops": webhook(receiver.url)})):
        assert await eventually(lambda: statuses(tmp_path, "ops")["delivered"] == 1, timeout=5)

    attempts = read(tmp_path, delivery_attempts, "ntc_001", "ops")
    [record] = read(tmp_path, deliveries_for_alert, "alert_1")
    [health] = read(tmp_path, channel_health, time.time())
    assert [attempt.status for attempt in attempts] == ["retry", "retry", "delivered"]
    assert attempts[0].error_class == "http_server_error"
    assert attempts[1].at - attempts[0].at >= 0.29
    assert record.attempts == 3
    assert {request.headers["webhook-id"] for request in receiver.requests} == {"ntc_001"}
    assert health.state == "ok"
    assert health.last_error_class == "http_server_error"


async def test_old_notice_dead_letter(tmp_path: Path, receiver: HttpReceiver) -> None:
    """A notice still failing when it turns 24 h old moves to the dead-letter list; an older one is never sent."""
    receiver.default = Reply(status=500, body=b"down")
    now = time.time()
    queue(tmp_path, "ops", [make_notice(1, created_at=now), make_notice(2, created_at=now - MAX_NOTICE_AGE - 3600)])
    # The sender's clock starts 0.5 s short of 24 h after the first notice was created,
    # so it is retried (every 0.3 s) until it is 24 h old.
    clock_offset = MAX_NOTICE_AGE - 0.5

    async with running(make_sender(tmp_path, {"ops": webhook(receiver.url)},
                                   clock=lambda: time.time() + clock_offset)):
        assert await eventually(lambda: statuses(tmp_path, "ops")["dead"] == 2, timeout=5)

    letters = {letter.notice_id: letter for letter in read(tmp_path, dead_letters)}
    sent = [request.headers["webhook-id"] for request in receiver.requests]
    assert set(sent) == {"ntc_001"}
    assert letters["ntc_001"].attempts == len(sent)
    assert letters["ntc_001"].attempts >= 1
    assert letters["ntc_002"].attempts == 0
    assert letters["ntc_002"].last_status == "expired"


async def test_send_resolved_false_skips(tmp_path: Path, receiver: HttpReceiver) -> None:
    """With `send_resolved: false` the resolve is recorded as skipped and never sent."""
    created = time.time()
    queue(tmp_path, "ops", [make_notice(1, created_at=created),
                            make_notice(1, notice_id="ntc_r", kind="resolved", ends_at=created,
                                        created_at=created + 0.001)])

    async with running(make_sender(tmp_path, {"ops": webhook(receiver.url, send_resolved=False)})):
        assert await eventually(lambda: statuses(tmp_path, "ops")["delivered"] == 2, timeout=5)

    records = read(tmp_path, deliveries_for_alert, "alert_1")
    assert [request.headers["webhook-id"] for request in receiver.requests] == ["ntc_001"]
    assert [record.skipped for record in records] == [False, True]


# --- receivers that never reply -----------------------------------------------------------


class LoopLag:
    """Measure how late a 50 ms ticker on the event loop wakes up, to catch blocking calls."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        """Tick until `stopped` is set, recording the worst lateness in seconds."""
        while not self.stopped.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, time.monotonic() - before - 0.05)


def email(port: int, timeout: float) -> dict[str, Any]:
    """Config of a plain-SMTP email channel on 127.0.0.1."""
    return {"type": "email", "host": "127.0.0.1", "port": port, "tls": "none", "timeout": timeout,
            "from": "atlas@example.org", "to": ["oncall@example.org"]}


async def test_hung_channels_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack gets its 5 notices while two SMTP servers and two webhooks hang; those end at their timeouts.

    One SMTP server never sends its 220 greeting, one stalls after DATA, one webhook
    never replies and one would reply after 120 s. Each hung attempt is recorded as
    a retry with a named reason, the event loop never blocks, and `stop()` returns
    within its bound although sends are still hanging.
    """
    hung_timeout = 0.8
    with contextlib.ExitStack() as stack:
        silent = stack.enter_context(SilentServer())
        stall_port = stack.enter_context(running_smtp(StallingSmtpHandler(), "plain"))
        hanging = stack.enter_context(HttpReceiver(default=Reply(hang=True)))
        slow = stack.enter_context(HttpReceiver(default=Reply(delay=120)))
        slack = stack.enter_context(HttpReceiver())
        monkeypatch.setenv(SLACK_ENV, slack.url)
        hung_channels = {
            "email-silent": email(silent.port, hung_timeout),
            "email-stall": email(stall_port, hung_timeout),
            "hook-hang": webhook(hanging.url, timeout=hung_timeout),
            "hook-slow": webhook(slow.url, timeout=hung_timeout),
        }
        channels = {**hung_channels, "slack": {"type": "slack", "webhook_url_env": SLACK_ENV, "rate_per_second": 20}}
        notices = [make_notice(index) for index in range(5)]
        for name in channels:
            queue(tmp_path, name, notices)

        lag = LoopLag()
        lag_task = asyncio.create_task(lag.run())
        sender = make_sender(tmp_path, channels, stop_grace=0.3)
        task = asyncio.create_task(sender.run())
        slack_in_time = await eventually(lambda: len(slack.requests) == 5, timeout=hung_timeout)
        first_attempts: dict[str, list[Any]] = {}

        def every_hung_channel_retried() -> bool:
            first_attempts.update({name: read(tmp_path, delivery_attempts, "ntc_000", name) for name in hung_channels})
            return all(first_attempts.values())

        retried = await eventually(every_hung_channel_retried, timeout=10)
        began = time.monotonic()
        await asyncio.wait_for(sender.stop(), timeout=10)
        stop_seconds = time.monotonic() - began
        await asyncio.wait_for(task, timeout=5)
        lag.stopped.set()
        await lag_task

    assert slack_in_time
    assert retried
    for name in hung_channels:
        first = first_attempts[name][0]
        assert first.status == "retry", name
        assert first.error_class, name
        assert first.message, name
        assert statuses(tmp_path, name) == Counter(pending=5), name
    assert first_attempts["hook-hang"][0].error_class == "read_timeout"
    assert first_attempts["email-stall"][0].error_class == "smtp_timeout"
    assert stop_seconds < 1.5
    assert lag.worst < 0.25


# --- restarts: no loss, no repeat ---------------------------------------------------------


async def test_pending_sent_once_at_start(tmp_path: Path, receiver: HttpReceiver) -> None:
    """A notice left pending by a previous run is sent once at start with its id; a delivered one never again."""
    queue(tmp_path, "ops", [make_notice(7)])

    async with running(make_sender(tmp_path, {"ops": webhook(receiver.url)})):
        assert await eventually(lambda: statuses(tmp_path, "ops")["delivered"] == 1, timeout=5)
    async with running(make_sender(tmp_path, {"ops": webhook(receiver.url)})):
        # Five poll intervals in which a second delivery would have gone out.
        await asyncio.sleep(0.5)

    assert [request.headers["webhook-id"] for request in receiver.requests] == ["ntc_007"]


async def test_interrupted_send_retried(tmp_path: Path, receiver: HttpReceiver) -> None:
    """A send cut off by a stop leaves the notice pending; the next start sends it with the same webhook-id."""
    receiver.script(Reply(hang=True))
    queue(tmp_path, "ops", [make_notice(3)])

    sender = make_sender(tmp_path, {"ops": webhook(receiver.url, timeout=10)})
    task = asyncio.create_task(sender.run())
    assert await eventually(lambda: len(receiver.requests) == 1, timeout=5)
    began = time.monotonic()
    await asyncio.wait_for(sender.stop(), timeout=10)
    stop_seconds = time.monotonic() - began
    await task
    after_stop = statuses(tmp_path, "ops")

    async with running(make_sender(tmp_path, {"ops": webhook(receiver.url, timeout=10)})):
        assert await eventually(lambda: statuses(tmp_path, "ops")["delivered"] == 1, timeout=5)

    assert stop_seconds < 2.0
    assert after_stop == Counter(pending=1)
    assert [request.headers["webhook-id"] for request in receiver.requests] == ["ntc_003", "ntc_003"]


async def test_wake_from_thread(tmp_path: Path, receiver: HttpReceiver) -> None:
    """`wake()` called from another thread makes an idle worker send a new notice at once."""
    async with running(make_sender(tmp_path, {"ops": webhook(receiver.url)}, poll_interval=30)) as sender:
        await asyncio.sleep(0.2)
        queue(tmp_path, "ops", [make_notice(4)])
        waker = threading.Thread(target=sender.wake)
        waker.start()
        waker.join()
        delivered = await eventually(lambda: len(receiver.requests) == 1, timeout=2)

    assert delivered

