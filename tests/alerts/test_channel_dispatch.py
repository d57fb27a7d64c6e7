"""The outbox's entry point `send` and its pacing helpers: rate limiter, backoff, routing by kind."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator

import httpx
import pytest

from atlas_tui.alerts.channels import dispatch
from atlas_tui.alerts.channels.dispatch import BACKOFF_CAP, RateLimiter, backoff, retry_delay, send, should_send
from atlas_tui.alerts.channels.message import Ack, NoticeGroup
from atlas_tui.alerts.channels.models import EmailChannel, SlackChannel, WebhookChannel, parse_channels
from atlas_tui.alerts.channels.result import DeliveryResult, DeliveryStatus, ErrorClass
from tests.alerts.receivers import (
    HttpReceiver,
    Reply,
    SilentServer,
    StallingSmtpHandler,
    running_smtp,
    sample_notice,
)

NOW = 1736846000.0


# --- RateLimiter ----------------------------------------------------------------------


def _send_times(limiter: RateLimiter, count: int, start: float = NOW) -> list[float]:
    """Drive the limiter like the outbox worker does, with a simulated clock."""
    clock = start
    times = []
    for _ in range(count):
        clock += limiter.ready_in(clock)
        assert limiter.try_acquire(clock)
        times.append(clock)
    return times


def test_limiter_first_send_immediate() -> None:
    """A fresh limiter lets the first send start at once."""
    assert RateLimiter(1.0).ready_in(NOW) == 0.0


def test_limiter_steady_one_per_second() -> None:
    """30 notices at 1 per second take at least 29 s, never two within a second."""
    times = _send_times(RateLimiter(1.0), 30)
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert times[-1] - times[0] >= 29.0
    assert min(gaps) >= 1.0


def test_limiter_refuses_early_send() -> None:
    """A second send inside the interval is refused and takes no token."""
    limiter = RateLimiter(1.0)
    assert limiter.try_acquire(NOW)
    assert not limiter.try_acquire(NOW + 0.5)
    assert limiter.ready_in(NOW + 0.5) == pytest.approx(0.5)


def test_limiter_burst() -> None:
    """With burst 3, three sends go at once and the fourth waits one interval."""
    limiter = RateLimiter(2.0, burst=3)
    assert all(limiter.try_acquire(NOW) for _ in range(3))
    assert limiter.ready_in(NOW) == pytest.approx(0.5)


def test_limiter_idle_does_not_bank_tokens() -> None:
    """After a long idle period the limiter allows no more than its burst at once."""
    limiter = RateLimiter(1.0)
    limiter.try_acquire(NOW)
    assert limiter.try_acquire(NOW + 3600)
    assert not limiter.try_acquire(NOW + 3600)


def test_limiter_pause_until() -> None:
    """A Retry-After pause delays every send until its end."""
    limiter = RateLimiter(1.0)
    limiter.pause_until(NOW + 30)
    assert limiter.ready_in(NOW) == 30.0
    assert _send_times(limiter, 1)[0] == NOW + 30


def test_limiter_unlimited() -> None:
    """Without a rate, sends are never delayed except by a pause."""
    limiter = RateLimiter(None)
    assert all(limiter.try_acquire(NOW) for _ in range(100))


def test_limiter_for_channel() -> None:
    """A channel's rate_per_second sets its limiter (Slack defaults to 1 per second)."""
    slack = SlackChannel.model_validate({"type": "slack", "webhook_url_env": "X"})
    limiter = RateLimiter.for_channel(slack)
    limiter.try_acquire(NOW)
    assert limiter.ready_in(NOW) == 1.0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_limiter_rejects_invalid(rate: float, burst: int) -> None:
    """A non-positive rate or burst is rejected."""
    with pytest.raises(ValueError):
        RateLimiter(rate, burst=burst)


# --- backoff ------------------------------------------------------------------------------


class _Fixed:
    """A random source returning one value, for exact backoff checks."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (500, 300.0)])
def test_backoff_doubles_to_cap(attempt: int, expected: float) -> None:
    """Without jitter the delays are 1, 2, 4 … s, capped at 300 s."""
    assert backoff(attempt, _Fixed(0.0)) == expected


def test_backoff_jitter_range() -> None:
    """Jitter shortens a delay by at most 20 % and never exceeds the cap."""
    rng = random.Random(7)
    delays = [backoff(12, rng) for _ in range(200)]
    assert min(delays) >= 0.8 * BACKOFF_CAP
    assert max(delays) <= BACKOFF_CAP
    assert len(set(delays)) > 100


def test_backoff_rejects_attempt_zero() -> None:
    """Attempts are counted from 1."""
    with pytest.raises(ValueError):
        backoff(0, _Fixed(0.0))


def test_retry_delay_honours_retry_after() -> None:
    """A Retry-After longer than the backoff wins."""
    result = DeliveryResult(status=DeliveryStatus.RETRY, retry_after=30.0)
    assert retry_delay(result, 1, _Fixed(0.0)) == 30.0


def test_retry_delay_uses_backoff() -> None:
    """Without Retry-After the backoff applies."""
    result = DeliveryResult(status=DeliveryStatus.RETRY)
    assert retry_delay(result, 3, _Fixed(0.0)) == 4.0


# --- routing by kind ----------------------------------------------------------------------

CHANNELS = parse_channels({
    "email": {"type": "email", "host": "h", "from": "a@b.example", "to": ["c@d.example"], "send_resolved": False},
    "slack": {"type": "slack", "webhook_url_env": "X"},
    "hook": {"type": "webhook", "url": "http://127.0.0.1/x"},
})


def test_send_resolved_false_skips_resolved() -> None:
    """`send_resolved: false` drops resolved notices on that channel only."""
    resolved = sample_notice(kind="resolved", ends_at=NOW)
    assert not should_send(CHANNELS["email"], resolved)
    assert should_send(CHANNELS["slack"], resolved)


def test_acknowledge_only_to_webhooks() -> None:
    """Acknowledge events go to webhooks, not to Slack or email."""
    ack = sample_notice(kind="acknowledge", ack=Ack(by="alice", at=NOW, message="on it"))
    assert should_send(CHANNELS["hook"], ack)
    assert not should_send(CHANNELS["slack"], ack)


def test_firing_goes_everywhere() -> None:
    """Firing notices go to every channel."""
    assert all(should_send(config, sample_notice()) for config in CHANNELS.values())


# --- send ---------------------------------------------------------------------------------


@pytest.fixture
def slack_receiver() -> Iterator[HttpReceiver]:
    """A healthy Slack-like receiver."""
    with HttpReceiver() as running:
        yield running


def _slack(monkeypatch: pytest.MonkeyPatch, url: str) -> SlackChannel:
    monkeypatch.setenv("ATLAS_TEST_SLACK_URL", url)
    return SlackChannel.model_validate({"type": "slack", "webhook_url_env": "ATLAS_TEST_SLACK_URL", "timeout": 1})


async def test_retry_after_then_delivered_in_order(
    slack_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a 429 with Retry-After 3, the retry comes ≥ 3 s later and the firing precedes the resolve.

    The outbox worker's loop is simulated with a virtual clock; the HTTP traffic is real.
    """
    slack_receiver.script(Reply(status=429, body=b"rate_limited", headers={"Retry-After": "3"}))
    config = _slack(monkeypatch, slack_receiver.url)
    limiter = RateLimiter.for_channel(config)
    queue = [sample_notice(notice_id="fire"), sample_notice(notice_id="resolve", kind="resolved", ends_at=NOW)]
    clock, attempts, sent_at = NOW, 0, []
    while queue:
        clock += limiter.ready_in(clock)
        limiter.try_acquire(clock)
        result = await send("slack", config, queue[0], now=clock)
        sent_at.append(clock)
        if result.ok:
            queue.pop(0)
            attempts = 0
            continue
        attempts += 1
        if result.retry_after is not None:
            limiter.pause_until(clock + result.retry_after)
        clock += retry_delay(result, attempts, random.Random(1))
    texts = [request.body.decode() for request in slack_receiver.requests]
    assert sent_at[1] - sent_at[0] >= 3.0
    assert "[FIRING]" in texts[1]
    assert "[RESOLVED]" in texts[2]


async def test_dead_channels_do_not_delay_slack(
    slack_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SMTP and webhook sinks that never respond, Slack still gets 5 notices at once.

    Each hung send ends at its channel's timeout as a retry.
    """
    slack = _slack(monkeypatch, slack_receiver.url)
    notices = [sample_notice(notice_id=f"n{i}", fingerprint=f"{i:016x}") for i in range(5)]
    finished: dict[str, float] = {}
    started = time.monotonic()

    async def worker(name: str, config: object) -> list[DeliveryResult]:
        # Two notices per hung channel keep the test short; each takes its full timeout.
        count = len(notices) if name == "slack" else 2
        results = [await send(name, config, notice, now=NOW) for notice in notices[:count]]
        finished[name] = time.monotonic() - started
        return results

    stalling = StallingSmtpHandler()
    with HttpReceiver(default=Reply(hang=True)) as hung_hook, SilentServer() as no_greeting, \
            running_smtp(stalling, "plain") as stalls_after_data:
        configs = {
            "slack": slack,
            "hook": WebhookChannel.model_validate({"type": "webhook", "url": hung_hook.url, "timeout": 0.5}),
            "smtp-silent": _smtp(no_greeting.port),
            "smtp-stall": _smtp(stalls_after_data),
        }
        outcome = await asyncio.gather(*(worker(name, config) for name, config in configs.items()))
    results = dict(zip(configs, outcome))
    assert all(result.ok for result in results["slack"])
    assert finished["slack"] < 0.5
    assert all(result.status is DeliveryStatus.RETRY for name in configs if name != "slack" for result in results[name])
    assert max(finished.values()) < 5.0


def _smtp(port: int) -> EmailChannel:
    return EmailChannel.model_validate({"type": "email", "host": "127.0.0.1", "port": port, "tls": "none",
                                        "from": "a@example.org", "to": ["b@example.org"], "timeout": 0.5})


async def test_group_sent_as_one_message(slack_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group is one POST listing every alert."""
    group = NoticeGroup(notice_id="g", notices=[sample_notice(notice_id=f"n{i}") for i in range(3)])
    result = await send("slack", _slack(monkeypatch, slack_receiver.url), group, now=NOW)
    assert result.ok
    assert len(slack_receiver.requests) == 1
    assert "[FIRING:3]" in slack_receiver.requests[0].body.decode()


async def test_shared_client_reused(slack_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client passed in is used and left open for the next attempt."""
    async with httpx.AsyncClient() as client:
        config = _slack(monkeypatch, slack_receiver.url)
        first = await send("slack", config, sample_notice(), now=NOW, client=client)
        second = await send("slack", config, sample_notice(notice_id="n2"), now=NOW, client=client)
        assert not client.is_closed
    assert first.ok and second.ok


async def test_channel_crash_becomes_result(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug inside a channel is returned as a retryable `internal_error` and logged, not raised."""

    async def broken(*args: object, **kwargs: object) -> DeliveryResult:
        raise RuntimeError("boom")

    monkeypatch.setattr(dispatch, "send_slack", broken)
    config = SlackChannel.model_validate({"type": "slack", "webhook_url_env": "X"})
    with caplog.at_level(logging.ERROR):
        result = await send("slack", config, sample_notice(), now=NOW)
    assert result.error_class is ErrorClass.INTERNAL_ERROR
    assert result.status is DeliveryStatus.RETRY
    assert "channel=slack" in caplog.text


def test_result_round_trips_as_json() -> None:
    """A result stored as JSON reads back equal, `ok` included."""
    result = DeliveryResult(status=DeliveryStatus.RETRY, error_class=ErrorClass.SMTP_TIMEOUT, retry_after=3.0)
    stored = result.model_dump_json()
    assert DeliveryResult.model_validate_json(stored) == result
    assert '"ok":false' in stored
