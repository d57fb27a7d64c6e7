"""The outbox sender: one worker per channel that delivers queued notices from the store.

Where this sits: the alert service writes notices into the `outbox` table in the
same transaction as the alert's state change, then calls `OutboxSender.wake()`. The
daemon runs `OutboxSender.run()` as one task and awaits `stop()` on shutdown. Each
configured channel gets its own asyncio task with its own store connection,
`RateLimiter` and HTTP client, so a slow, rate-limited or dead channel never delays
another. The sender also runs the syslog fallback of `atlas_tui.alerts.fallback`.

Per notice a worker:

1. waits for the channel's rate limiter (a 429 `Retry-After` or a backoff pauses it);
2. moves a notice older than 24 h to the dead-letter list without sending it;
3. records `skipped` when the channel takes no notice of this kind (`should_send`);
4. sends it with a fresh `now` and records the attempt, the row's new status and the
   channel's health in one short transaction (`storage.outbox.record_attempt`).

Outcomes: `delivered` ends the row. `retry` keeps it pending until `now` plus the
backoff (1, 2, 4 … 300 s with jitter), or exactly `Retry-After` on a 429, and pauses
the whole channel for as long. `misconfigured` moves the row to `held` and stops the channel
until its config changes. `failed` dead-letters the row.

An Alertmanager channel's worker also re-sends the channel's open incidents every
`resend_interval`, between two notices (`atlas_tui.alerts.resend`), because
Alertmanager resolves an alert that is not sent again.

Invariants: delivery is at least once. A row stays pending until its outcome is
committed, so a send that was interrupted by a stop, a crash or a timeout is sent
again (with the same `notice_id`, which is the `webhook-id` and the email
Message-ID) at the next attempt or start. The sender reads the time only through
the injected `clock`, and `plan_attempt` decides from the `now` it is given. Logs
name the channel and notice, never a secret or a full webhook URL, and repeated
failures are logged at most once per minute per channel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import math
import random
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from atlas_tui.alerts.channels.dispatch import BACKOFF_CAP, RandomSource, RateLimiter, backoff, send, should_send
from atlas_tui.alerts.channels.http_delivery import new_client
from atlas_tui.alerts.channels.message import Notice, NoticeGroup
from atlas_tui.alerts.channels.models import ChannelConfig, EmailChannel
from atlas_tui.alerts.channels.result import DeliveryResult, DeliveryStatus, ErrorClass
from atlas_tui.alerts.channels.smtp_session import PROBE_TIMEOUT
from atlas_tui.alerts.fallback import CriticalFallback
from atlas_tui.alerts.resend import Resender, resender_for
from atlas_tui.alerts.rules import load_rules
from atlas_tui.config import Config
from storage.db import open_store
from storage.outbox import (
    MAX_NOTICE_AGE,
    AttemptOutcome,
    ChannelState,
    ChannelUpdate,
    OutboxRow,
    channel_health,
    next_due,
    next_due_at,
    prepare_channel,
    record_attempt,
)

__all__ = [
    "LOG_REPEAT_INTERVAL",
    "POLL_INTERVAL",
    "STOP_GRACE",
    "AttemptPlan",
    "ClientFactory",
    "OutboxSender",
    "channel_config_hash",
    "plan_attempt",
]

logger = logging.getLogger(__name__)

POLL_INTERVAL = 2.0
"""Seconds an idle worker waits before it looks for new rows without a `wake()`. Rows
queued by another process (an acknowledgement from the CLI) are found this way."""

STOP_GRACE = 1.5
"""Seconds `stop()` lets in-flight sends finish before it interrupts them. It leaves
room in the daemon's 4.5 s stop budget for the other tasks."""

LOG_REPEAT_INTERVAL = 60.0
"""Minimum seconds between two log lines about the same failing channel, unless its state changes."""

_STOP_WAIT = 0.5
_SEND_BOUND_FACTOR = 4

ClientFactory = Callable[[ChannelConfig], httpx.AsyncClient]
"""Builds the HTTP client of one Slack or webhook channel; tests can inject their own."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    """The worker's decision after one send: the row's outcome, the channel's health and pause."""

    outcome: AttemptOutcome
    update: ChannelUpdate | None
    pause_until: float | None
    """Until when the whole channel sends nothing; None for no pause."""


def plan_attempt(
    result: DeliveryResult,
    row: OutboxRow,
    *,
    now: float,
    rng: RandomSource,
    failures: int,
    backoff_cap: float = BACKOFF_CAP,
    max_age: float = MAX_NOTICE_AGE,
) -> AttemptPlan:
    """Decide what a send's result does to the row and its channel.

    Args:
        result: The outcome `send` returned.
        row: The row as it was before this attempt.
        now: UTC epoch seconds when the attempt ended.
        rng: Source of backoff jitter.
        failures: The channel's consecutive failures before this attempt.
        backoff_cap: Maximum backoff in seconds.
        max_age: Seconds after `row.created_at` when a retry becomes a dead letter.
    """
    if result.status is DeliveryStatus.DELIVERED:
        return AttemptPlan(_outcome(result, "delivered"), ChannelUpdate("ok", success=True), None)
    if result.status is DeliveryStatus.MISCONFIGURED:
        return AttemptPlan(_outcome(result, "held"), ChannelUpdate("misconfigured", success=False), None)
    if result.status is DeliveryStatus.FAILED:
        return AttemptPlan(_outcome(result, "dead"), None, None)
    return _plan_retry(result, row, now=now, rng=rng, failures=failures, backoff_cap=backoff_cap, max_age=max_age)


def channel_config_hash(channel_config: ChannelConfig) -> str:
    """Return a digest of a channel's config; held notices are released when it changes.

    The config contains only references to secrets (variable names, file paths), so a
    secret rotated in place does not change the digest. `storage.outbox.release_held`
    covers that case.
    """
    text = json.dumps(channel_config.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class OutboxSender:
    """Deliver the outbox with one worker per configured channel until `stop()`."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        rng: RandomSource | None = None,
        client_factory: ClientFactory | None = None,
        external_url: str = "",
        poll_interval: float = POLL_INTERVAL,
        stop_grace: float = STOP_GRACE,
        backoff_cap: float = BACKOFF_CAP,
        fallback: bool = True,
    ) -> None:
        """Prepare the workers without opening anything until `run()`.

        Args:
            config: The effective configuration; its `channels` get one worker each.
            data_dir: Data directory holding the store.
            clock: UTC epoch seconds; the only clock the sender reads.
            rng: Source of backoff jitter; None uses a new `random.Random()`.
            client_factory: Builds each HTTP channel's client; None uses the channels' default.
            external_url: Base URL of this daemon for Alertmanager-format webhooks.
            poll_interval: Seconds an idle worker waits before looking for new rows.
            stop_grace: Seconds `stop()` lets in-flight sends finish.
            backoff_cap: Maximum seconds between two attempts of one notice.
            fallback: Run the syslog fallback for critical alerts when every channel is down.
        """
        self.config = config
        self.data_dir = data_dir
        self._clock = clock
        self._stop_grace = stop_grace
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        settings = _WorkerSettings(
            data_dir=data_dir, clock=clock, rng=rng or random.Random(), poll_interval=poll_interval,
            backoff_cap=backoff_cap, external_url=external_url, stopping=self._stopping,
            client_factory=client_factory or (lambda _config: new_client()),
        )
        rules = load_rules(config.alert_rules).rules
        self._workers = [
            _ChannelWorker(name, channel, settings, resender_for(name, channel, rules))
            for name, channel in config.channels.items()
        ]
        self._fallback = CriticalFallback(config, data_dir, clock=clock) if fallback and config.channels else None

    async def run(self) -> None:
        """Run every channel's worker until `stop()`; returns only after a stop."""
        self._loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(worker.run(), name=f"outbox-{worker.name}") for worker in self._workers]
        if self._fallback is not None:
            tasks.append(asyncio.create_task(self._fallback.run(self._stopping), name="outbox-fallback"))
        logger.info("outbox sender started channels=%s", ",".join(w.name for w in self._workers) or "none")
        try:
            await self._stopping.wait()
            await self._wind_down(tasks)
        finally:
            for task in tasks:
                task.cancel()
            pending = [task for task in tasks if not task.done()]
            if pending:
                await asyncio.wait(pending, timeout=_STOP_WAIT)
            self._finished.set()
            logger.info("outbox sender stopped")

    async def stop(self) -> None:
        """Stop the workers within about `stop_grace` + 1 s.

        In-flight sends get `stop_grace` seconds to finish and be recorded. Sends
        still running then are interrupted, and their rows stay pending, so they are
        sent again at the next start (at least once). SMTP sessions run in daemon
        threads, so a hung mail server cannot keep the process alive either.
        """
        self._stopping.set()
        self.wake()
        if self._loop is not None:
            await self._finished.wait()

    def wake(self) -> None:
        """Make every idle worker look for due rows now; safe to call from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake_workers()
        else:
            loop.call_soon_threadsafe(self._wake_workers)

    def _wake_workers(self) -> None:
        for worker in self._workers:
            worker.wake.set()

    async def _wind_down(self, tasks: list[asyncio.Task[None]]) -> None:
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self._stop_grace)
        if not pending:
            return
        busy = [worker.name for worker in self._workers if worker.interrupt()]
        logger.info("outbox stop interrupted in-flight sends channels=%s; they are retried at the next start",
                    ",".join(busy) or "none")
        await asyncio.wait(pending, timeout=_STOP_WAIT)


@dataclass(frozen=True, slots=True)
class _WorkerSettings:
    data_dir: Path
    clock: Callable[[], float]
    rng: RandomSource
    poll_interval: float
    backoff_cap: float
    external_url: str
    stopping: asyncio.Event
    client_factory: ClientFactory


class _ChannelWorker:
    """Deliver one channel's rows in order, paced by its own limiter, with its own connection."""

    def __init__(
        self, name: str, channel: ChannelConfig, settings: _WorkerSettings, resender: Resender | None = None
    ) -> None:
        self.name = name
        self.channel = channel
        self.settings = settings
        self.resender = resender
        self.wake = asyncio.Event()
        self.limiter = RateLimiter.for_channel(channel)
        self.failures = 0
        self.misconfigured = False
        self.log = _ChannelLog(name)
        self._conn: sqlite3.Connection | None = None
        self._client: httpx.AsyncClient | None = None
        self._inflight: asyncio.Task[DeliveryResult] | None = None

    async def run(self) -> None:
        """Deliver until the sender stops; a failure of one step is logged and retried."""
        try:
            while not self._stopping():
                try:
                    await self._step()
                except Exception as err:  # worker boundary: keep delivering the other rows
                    self.log.internal(err, self.settings.clock())
                    await self._wait(self.settings.poll_interval)
        finally:
            await self._close()

    def interrupt(self) -> bool:
        """Cancel the send in flight, if any, and return True if there was one."""
        if self._inflight is None or self._inflight.done():
            return False
        self._inflight.cancel()
        return True

    async def _step(self) -> None:
        conn = self._conn
        if conn is None:
            await self._open()
            return
        now = self.settings.clock()
        if self.misconfigured:
            await self._wait(self.settings.poll_interval)
            await self._refresh_misconfigured(conn)
            return
        ready_in = self.limiter.ready_in(now)
        if ready_in > 0:
            await self._wait(ready_in)
            return
        if self.resender is not None and self.resender.due_in(now) == 0:
            await self._resend(conn, self.resender, now)
            return
        row = await self._blocking(next_due, conn, self.name, now)
        if row is None:
            await self._idle(conn, now)
            return
        await self._attempt(conn, row)

    async def _open(self) -> None:
        conn = await self._blocking(open_store, self.settings.data_dir)
        self._conn = conn
        if not isinstance(self.channel, EmailChannel):
            self._client = self.settings.client_factory(self.channel)
        now = self.settings.clock()
        released = await self._blocking(prepare_channel, conn, self.name, channel_config_hash(self.channel), now)
        if released:
            logger.info("channel config changed, held notices released channel=%s released=%d", self.name, released)
        health = await self._blocking(channel_health, conn, now, self.name)
        if health:
            self._restore(health[0].state, health[0].consecutive_failures, health[0].next_retry_at)

    def _restore(self, state: ChannelState, failures: int, pause_until: float | None) -> None:
        self.failures = failures
        self.misconfigured = state == "misconfigured"
        if state != "ok" and pause_until is not None:
            self.limiter.pause_until(pause_until)
        if state != "ok":
            logger.warning("channel not healthy at start channel=%s state=%s failures=%d", self.name, state, failures)

    async def _idle(self, conn: sqlite3.Connection, now: float) -> None:
        due = await self._blocking(next_due_at, conn, self.name)
        wait = self.settings.poll_interval if due is None else due - now
        if self.resender is not None:
            wait = min(wait, self.resender.due_in(now))
        await self._wait(min(max(wait, 0.0), self.settings.poll_interval))

    async def _refresh_misconfigured(self, conn: sqlite3.Connection) -> None:
        health = await self._blocking(channel_health, conn, self.settings.clock(), self.name)
        if health and health[0].state != "misconfigured":
            logger.info("channel released from misconfigured channel=%s", self.name)
            self.misconfigured = False
            self.failures = 0

    async def _attempt(self, conn: sqlite3.Connection, row: OutboxRow) -> None:
        now = self.settings.clock()
        checked = self._check(row, now)
        if isinstance(checked, AttemptOutcome):
            await self._blocking(record_attempt, conn, row.id, self.name, checked, None, now=now)
            self._report_unsent(row, checked, now)
            return
        if not self.limiter.try_acquire(now):
            return
        result = await self._send(row.notice_id, checked, now)
        if result is None:
            return
        ended = self.settings.clock()
        plan = plan_attempt(result, row, now=ended, rng=self.settings.rng, failures=self.failures,
                            backoff_cap=self.settings.backoff_cap)
        await self._blocking(record_attempt, conn, row.id, self.name, plan.outcome, plan.update, now=ended)
        self._apply(plan, row, ended)

    def _check(self, row: OutboxRow, now: float) -> Notice | AttemptOutcome:
        """Return the row's notice, or the outcome of a row that must not be sent.

        A row is not sent when it is older than `MAX_NOTICE_AGE`, when its payload
        cannot be read, or when the channel takes no notice of its kind.
        """
        if now - row.created_at >= MAX_NOTICE_AGE:
            return AttemptOutcome("dead", "expired", _expired_message(self.name, row), sent=False,
                                  error_class="expired")
        try:
            notice = Notice.model_validate_json(row.payload)
        except ValidationError as err:
            return AttemptOutcome("dead", "invalid", f"channel {self.name}: stored notice is invalid "
                                  f"({err.error_count()} errors)", sent=False,
                                  error_class=str(ErrorClass.INTERNAL_ERROR))
        if not should_send(self.channel, notice):
            return AttemptOutcome("delivered", "skipped", f"channel {self.name} takes no {row.kind} notices",
                                  sent=False)
        return notice

    async def _resend(self, conn: sqlite3.Connection, resender: Resender, now: float) -> None:
        """Re-send the channel's open incidents as one group; a failure waits for the next interval."""
        group = await self._blocking(resender.collect, conn, now)
        result = None
        if group is not None and self.limiter.try_acquire(now):
            result = await self._send(group.notice_id, group, now)
        count = len(group.notices) if group is not None else 0
        resender.finished(result, count, self.settings.clock())

    async def _send(self, notice_id: str, notice: Notice | NoticeGroup, now: float) -> DeliveryResult | None:
        """Send one notice or group; None when `stop()` interrupted the send, so a row stays pending."""
        inflight = asyncio.create_task(self._bounded_send(notice, now))
        self._inflight = inflight
        try:
            await asyncio.wait({inflight})
        except asyncio.CancelledError:
            inflight.cancel()
            raise
        finally:
            self._inflight = None
        if inflight.cancelled():
            logger.info("send interrupted by stop channel=%s notice=%s", self.name, notice_id)
            return None
        return inflight.result()

    async def _bounded_send(self, notice: Notice | NoticeGroup, now: float) -> DeliveryResult:
        # The channels bound each step by `timeout`; this outer bound catches a
        # receiver that keeps a session alive one slow step after another.
        bound = _SEND_BOUND_FACTOR * self.channel.timeout + PROBE_TIMEOUT
        try:
            async with asyncio.timeout(bound):
                if isinstance(self.channel, EmailChannel):
                    return await _in_daemon_thread(lambda: send(self.name, self.channel, notice, now=now))
                return await send(self.name, self.channel, notice, now=now, client=self._client,
                                  external_url=self.settings.external_url)
        except TimeoutError:
            return DeliveryResult(status=DeliveryStatus.RETRY, error_class=ErrorClass.TIMEOUT,
                                  message=f"channel {self.name}: no outcome within {bound:g} s; "
                                          "it may have been delivered, so the retry keeps its id")

    def _apply(self, plan: AttemptPlan, row: OutboxRow, now: float) -> None:
        if plan.pause_until is not None:
            self.limiter.pause_until(plan.pause_until)
        if plan.update is None:
            self.log.dead(row, plan.outcome, now)
            return
        if plan.update.success:
            self.failures = 0
            self.log.recovered(now)
            logger.debug("notice delivered channel=%s notice=%s attempts=%d", self.name, row.notice_id,
                         row.attempts + 1)
            return
        self.failures += 1
        self.misconfigured = plan.update.state == "misconfigured"
        self.log.failed(plan.update.state, row, plan.outcome, now, failures=self.failures)
        if plan.outcome.row_status == "dead":
            self.log.dead(row, plan.outcome, now)

    def _report_unsent(self, row: OutboxRow, outcome: AttemptOutcome, now: float) -> None:
        if outcome.attempt_status == "skipped":
            logger.debug("notice skipped channel=%s notice=%s kind=%s", self.name, row.notice_id, row.kind)
            return
        self.log.dead(row, outcome, now)

    async def _wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, returning early on `wake()` or a stop."""
        if self._stopping():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=max(seconds, 0.0))
        self.wake.clear()

    def _stopping(self) -> bool:
        return self.settings.stopping.is_set()

    async def _blocking(self, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a store call in a thread; a cancelled caller still waits for the thread to end.

        The connection is closed only after the worker returns, so it must never be
        closed while a thread still uses it.
        """
        task = asyncio.ensure_future(asyncio.to_thread(function, *args, **kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait({task})
            raise

    async def _close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        if self._conn is not None:
            self._conn.close()


class _ChannelLog:
    """Log a channel's failures: the first, every state change, then at most once per `LOG_REPEAT_INTERVAL`."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.state: str = "ok"
        self.last_logged_at = -math.inf
        self.suppressed = 0
        self.dead_logged_at = -math.inf
        self.dead_suppressed = 0

    def failed(self, state: ChannelState, row: OutboxRow, outcome: AttemptOutcome, now: float, *, failures: int) -> None:
        if state == self.state and now - self.last_logged_at < LOG_REPEAT_INTERVAL:
            self.suppressed += 1
            return
        level = logging.ERROR if state == "misconfigured" else logging.WARNING
        logger.log(level, "notification %s channel=%s notice=%s failures=%d error=%s repeats_not_logged=%d: %s",
                   _STATE_WORDS[state], self.channel, row.notice_id, failures, outcome.error_class,
                   self.suppressed, outcome.message)
        self.state = state
        self.last_logged_at = now
        self.suppressed = 0

    def recovered(self, now: float) -> None:
        if self.state == "ok":
            return
        logger.info("notification channel recovered channel=%s was=%s repeats_not_logged=%d",
                    self.channel, self.state, self.suppressed)
        self.state = "ok"
        self.last_logged_at = now
        self.suppressed = 0

    def dead(self, row: OutboxRow, outcome: AttemptOutcome, now: float) -> None:
        if now - self.dead_logged_at < LOG_REPEAT_INTERVAL:
            self.dead_suppressed += 1
            return
        logger.warning("notice moved to the dead-letter list channel=%s notice=%s attempts=%d reason=%s "
                       "repeats_not_logged=%d: %s", self.channel, row.notice_id, row.attempts,
                       outcome.attempt_status, self.dead_suppressed, outcome.message)
        self.dead_logged_at = now
        self.dead_suppressed = 0

    def internal(self, err: Exception, now: float) -> None:
        if now - self.last_logged_at < LOG_REPEAT_INTERVAL and self.state == "internal":
            self.suppressed += 1
            return
        logger.error("outbox worker step failed channel=%s: %s", self.channel, err, exc_info=err)
        self.state = "internal"
        self.last_logged_at = now
        self.suppressed = 0


_STATE_WORDS: dict[str, str] = {
    "degraded": "rate limited",
    "failing": "failing",
    "misconfigured": "channel misconfigured",
    "ok": "ok",
}


def _plan_retry(
    result: DeliveryResult,
    row: OutboxRow,
    *,
    now: float,
    rng: RandomSource,
    failures: int,
    backoff_cap: float,
    max_age: float,
) -> AttemptPlan:
    rate_limited = result.error_class is ErrorClass.HTTP_RATE_LIMITED
    if rate_limited and result.retry_after is not None:
        # Retry-After gives the exact time the receiver accepts requests again.
        row_delay = channel_delay = result.retry_after
    else:
        floor = result.retry_after or 0.0
        row_delay = max(backoff(row.attempts + 1, rng, cap=backoff_cap), floor)
        channel_delay = max(backoff(failures + 1, rng, cap=backoff_cap), floor)
    state: ChannelState = "degraded" if rate_limited else "failing"
    pause_until = now + channel_delay
    update = ChannelUpdate(state, success=False, next_retry_at=pause_until)

    if now - row.created_at >= max_age:
        message = f"{result.message}; retried for {max_age / 3600:g} h, moved to the dead-letter list"
        return AttemptPlan(_outcome(result, "dead", message=message), update, pause_until)
    return AttemptPlan(_outcome(result, "pending", next_attempt_at=now + row_delay), update, pause_until)


def _outcome(
    result: DeliveryResult, row_status: str, *, next_attempt_at: float | None = None, message: str | None = None
) -> AttemptOutcome:
    return AttemptOutcome(
        row_status=row_status,  # type: ignore[arg-type]
        attempt_status=str(result.status),
        message=message or result.message,
        next_attempt_at=next_attempt_at,
        error_class=None if result.error_class is None else str(result.error_class),
        http_status=result.http_status,
        response_body=result.response_body,
        latency_ms=result.latency_ms,
    )


def _expired_message(channel: str, row: OutboxRow) -> str:
    return (f"channel {channel}: not delivered within {MAX_NOTICE_AGE / 3600:g} h of its creation "
            f"after {row.attempts} attempts; moved to the dead-letter list")


class _DaemonThreadExecutor(concurrent.futures.ThreadPoolExecutor):
    """Run each call in a new daemon thread instead of a pooled worker.

    `asyncio.run` and the interpreter wait for pooled worker threads at exit, so a
    mail server that never replies would delay the daemon's exit until the SMTP
    timeout. Daemon threads are abandoned instead. It subclasses
    `ThreadPoolExecutor` only because `loop.set_default_executor` requires one.
    """

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[_T]:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as err:  # handed to the awaiting coroutine
                future.set_exception(err)

        threading.Thread(target=run, name="atlas-outbox-smtp", daemon=True).start()
        return future


_DAEMON_THREADS = _DaemonThreadExecutor()


async def _in_daemon_thread(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine on a private event loop in a daemon thread, whose own threads are daemons too.

    `send_email` runs the blocking SMTP session through `asyncio.to_thread`; on this
    private loop that call also lands in a daemon thread.
    """
    return await asyncio.wrap_future(_DAEMON_THREADS.submit(_run_on_private_loop, factory))


def _run_on_private_loop(factory: Callable[[], Awaitable[_T]]) -> _T:
    loop = asyncio.new_event_loop()
    loop.set_default_executor(_DaemonThreadExecutor())
    try:
        return loop.run_until_complete(factory())  # type: ignore[arg-type]
    finally:
        loop.close()
