"""The entry point the outbox worker calls, plus its pacing helpers.

`send` delivers one notice (or group) to one channel and always returns a
`DeliveryResult`; it never raises for a delivery problem. The worker then:

1. waits until `RateLimiter.ready_in(now)` is 0 and calls `try_acquire(now)`;
2. calls `send(...)` with a fresh `now` on every attempt;
3. on `retry`, calls `limiter.pause_until(now + result.retry_after)` when the
   receiver sent `Retry-After` (a 429 pauses the whole channel) and schedules the
   next attempt after `retry_delay(result, attempt, rng)`;
4. on `misconfigured`, stops retrying, keeps the notice and shows the channel as
   misconfigured with `message` and `response_body` until its config changes;
5. on `failed`, moves the notice to the dead-letter list.

Delivery is at least once: a timeout after the receiver got the request can lead
to a second delivery, which carries the same `webhook-id` or Message-ID.
Nothing here reads the clock; `now` and the random source are parameters.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import httpx

from atlas_tui.alerts.channels.alertmanager_api import send_alertmanager
from atlas_tui.alerts.channels.credentials import redact_url
from atlas_tui.alerts.channels.email import send_email
from atlas_tui.alerts.channels.errors import SecretError, SecretInvalidError
from atlas_tui.alerts.channels.http_delivery import new_client
from atlas_tui.alerts.channels.message import Notice, NoticeGroup, as_group
from atlas_tui.alerts.channels.models import (
    AlertmanagerChannel,
    ChannelConfig,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
)
from atlas_tui.alerts.channels.result import DeliveryResult, DeliveryStatus, ErrorClass
from atlas_tui.alerts.channels.slack import send_slack
from atlas_tui.alerts.channels.webhook import send_webhook

__all__ = [
    "BACKOFF_CAP",
    "RandomSource",
    "RateLimiter",
    "backoff",
    "retry_delay",
    "send",
    "should_send",
]

logger = logging.getLogger(__name__)

BACKOFF_CAP = 300.0
"""Maximum seconds between two attempts of one notice."""


class RandomSource(Protocol):
    """Anything with `random() -> float` in [0, 1), such as `random.Random(seed)`."""

    def random(self) -> float: ...


async def send(
    channel_name: str,
    channel_config: ChannelConfig,
    notice: Notice | NoticeGroup,
    *,
    now: float,
    client: httpx.AsyncClient | None = None,
    external_url: str = "",
) -> DeliveryResult:
    """Deliver `notice` to one channel and report the outcome; never raises for delivery problems.

    Args:
        channel_name: The channel's key in the config, used in messages and as the
            Alertmanager `receiver`.
        channel_config: The channel's validated config.
        notice: One notice, or a group delivered as one message.
        now: UTC epoch seconds of this attempt (webhook timestamp, Date header, Retry-After dates).
        client: HTTP client to reuse across attempts; None opens one for this call.
        external_url: Base URL of this daemon for the Alertmanager `externalURL`.
    """
    group = as_group(notice)
    try:
        result = await _send(channel_name, channel_config, group, now=now, client=client, external_url=external_url)
    except SecretError as err:
        error_class = ErrorClass.SECRET_INVALID if isinstance(err, SecretInvalidError) else ErrorClass.SECRET_MISSING
        result = DeliveryResult(status=DeliveryStatus.MISCONFIGURED, error_class=error_class, message=str(err))
    except Exception as err:  # worker boundary: a bug in one channel must not stop the outbox
        logger.error("notification send crashed channel=%s notice=%s", channel_name, group.notice_id, exc_info=True)
        result = DeliveryResult(status=DeliveryStatus.RETRY, error_class=ErrorClass.INTERNAL_ERROR,
                                message=f"channel {channel_name}: internal error {type(err).__name__}; "
                                        "see the daemon log")
    logger.debug("notification attempt channel=%s target=%s notice=%s status=%s error=%s latency_ms=%s",
                 channel_name, _target(channel_config), group.notice_id, result.status,
                 result.error_class, result.latency_ms)
    return result


def should_send(channel_config: ChannelConfig, notice: Notice) -> bool:
    """Decide whether a notice of this kind goes to this channel at all.

    Resolved notices are skipped when the channel has `send_resolved: false`.
    Acknowledge events go only to webhooks, whose receivers can act on them; Slack
    and email readers see the acknowledgement in the resolved or repeat notice.
    """
    if notice.kind == "resolved":
        return channel_config.send_resolved
    if notice.kind == "acknowledge":
        return isinstance(channel_config, WebhookChannel)
    return True


class RateLimiter:
    """Token bucket pacing one channel: `rate` sends per second, bursts of up to `burst`.

    Kept as the earliest time the next send may start (the bucket's "theoretical
    arrival time"), which is equivalent to a token bucket and needs no timer.
    A `rate` of None means no cap, but `pause_until` still applies.
    """

    def __init__(self, rate: float | None, burst: int = 1) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive or None, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._burst = burst
        self._next_free = -math.inf
        self._paused_until = -math.inf

    @classmethod
    def for_channel(cls, channel_config: ChannelConfig) -> RateLimiter:
        """Create the limiter for a channel's `rate_per_second`."""
        return cls(channel_config.rate_per_second)

    def ready_in(self, now: float) -> float:
        """Seconds from `now` until a send may start; 0 when it may start now."""
        allowed_at = self._next_free - (self._burst - 1) * self._interval
        return max(0.0, allowed_at - now, self._paused_until - now)

    def try_acquire(self, now: float) -> bool:
        """Take a token for a send at `now`; False (and nothing taken) when it must wait."""
        if self.ready_in(now) > 0:
            return False
        self._next_free = max(self._next_free, now) + self._interval
        return True

    def pause_until(self, until: float) -> None:
        """Hold every send until `until`, for example after a 429 with `Retry-After`."""
        self._paused_until = max(self._paused_until, until)


def backoff(attempt: int, rng: RandomSource, *, cap: float = BACKOFF_CAP, jitter: float = 0.2) -> float:
    """Seconds to wait after the `attempt`-th failed attempt: 1, 2, 4 … up to `cap`, minus up to 20 %.

    Jitter only shortens the delay, so the cap is never exceeded, and senders that
    failed together do not all retry at the same moment.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts failed attempts from 1, got {attempt!r}")
    base = min(cap, 2.0 ** min(attempt - 1, 64))
    return base * (1.0 - jitter * rng.random())


def retry_delay(result: DeliveryResult, attempt: int, rng: RandomSource) -> float:
    """Seconds until the next attempt: the backoff, or the receiver's `Retry-After` if longer."""
    return max(backoff(attempt, rng), result.retry_after or 0.0)


async def _send(
    channel: str,
    config: ChannelConfig,
    group: NoticeGroup,
    *,
    now: float,
    client: httpx.AsyncClient | None,
    external_url: str,
) -> DeliveryResult:
    if isinstance(config, EmailChannel):
        return await send_email(channel, config, group, now=now)
    if client is None:
        async with new_client() as own_client:
            return await _send_http(channel, config, group, now=now, client=own_client, external_url=external_url)
    return await _send_http(channel, config, group, now=now, client=client, external_url=external_url)


async def _send_http(
    channel: str,
    config: SlackChannel | WebhookChannel | AlertmanagerChannel,
    group: NoticeGroup,
    *,
    now: float,
    client: httpx.AsyncClient,
    external_url: str,
) -> DeliveryResult:
    if isinstance(config, SlackChannel):
        return await send_slack(channel, config, group, client=client, now=now)
    if isinstance(config, AlertmanagerChannel):
        return await send_alertmanager(channel, config, group, client=client, now=now)
    return await send_webhook(channel, config, group, client=client, now=now, external_url=external_url)


def _target(config: ChannelConfig) -> str:
    if isinstance(config, EmailChannel):
        return f"{config.host}:{config.smtp_port}"
    if isinstance(config, (WebhookChannel, AlertmanagerChannel)):
        return redact_url(config.url)
    return "slack"
