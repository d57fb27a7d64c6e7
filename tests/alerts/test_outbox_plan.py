"""`plan_attempt`: what one send's result does to the row and its channel, with a frozen `now`."""

from __future__ import annotations

import random

import pytest

from atlas_tui.alerts.channels.models import SlackChannel, WebhookChannel
from atlas_tui.alerts.channels.result import DeliveryResult, DeliveryStatus, ErrorClass
from atlas_tui.alerts.outbox import channel_config_hash, plan_attempt
from storage.outbox import MAX_NOTICE_AGE, OutboxRow

NOW = 1736846000.0


class NoJitter(random.Random):
    """A random source whose `random()` is always 0, so backoff is exactly 1, 2, 4 … s."""

    def random(self) -> float:
        return 0.0


def _row(attempts: int = 0, created_at: float = NOW - 60) -> OutboxRow:
    return OutboxRow(id=1, notice_id="ntc_1", channel="ops", kind="firing", alert_id="alert_1",
                     fingerprint="fp", payload="{}", created_at=created_at, status="pending",
                     attempts=attempts, next_attempt_at=created_at)


def _result(status: DeliveryStatus, error_class: ErrorClass | None = None, **fields: object) -> DeliveryResult:
    return DeliveryResult(status=status, error_class=error_class, message="channel ops: test", **fields)


def test_delivered_resets_channel() -> None:
    """A delivery finishes the row and reports the channel ok."""
    plan = plan_attempt(_result(DeliveryStatus.DELIVERED), _row(), now=NOW, rng=NoJitter(), failures=3)
    assert plan.outcome.row_status == "delivered"
    assert plan.update is not None
    assert plan.update.success
    assert plan.pause_until is None


@pytest.mark.parametrize(("attempts", "delay"), [(0, 1.0), (1, 2.0), (2, 4.0), (8, 256.0), (9, 300.0), (30, 300.0)])
def test_server_error_backoff(attempts: int, delay: float) -> None:
    """A 5xx is retried after 1, 2, 4 … s, capped at 300 s, and marks the channel failing."""
    result = _result(DeliveryStatus.RETRY, ErrorClass.HTTP_SERVER_ERROR, http_status=503)
    plan = plan_attempt(result, _row(attempts), now=NOW, rng=NoJitter(), failures=0)
    assert plan.outcome.row_status == "pending"
    assert plan.outcome.next_attempt_at == NOW + delay
    assert plan.update is not None
    assert plan.update.state == "failing"


def test_jitter_only_shortens() -> None:
    """With jitter the delay stays within 80–100 % of the backoff step."""
    result = _result(DeliveryStatus.RETRY, ErrorClass.READ_TIMEOUT)
    rng = random.Random(7)
    delays = [plan_attempt(result, _row(3), now=NOW, rng=rng, failures=0).outcome.next_attempt_at - NOW
              for _ in range(50)]
    assert min(delays) >= 6.4
    assert max(delays) <= 8.0


def test_rate_limit_honours_retry_after() -> None:
    """A 429 with Retry-After waits exactly that long, for the row and the whole channel, and degrades it."""
    result = _result(DeliveryStatus.RETRY, ErrorClass.HTTP_RATE_LIMITED, http_status=429, retry_after=30.0)
    plan = plan_attempt(result, _row(5), now=NOW, rng=NoJitter(), failures=5)
    assert plan.outcome.next_attempt_at == NOW + 30.0
    assert plan.pause_until == NOW + 30.0
    assert plan.update is not None
    assert plan.update.state == "degraded"
    assert plan.update.next_retry_at == NOW + 30.0


def test_channel_pause_grows_with_failures() -> None:
    """The channel's pause grows with its consecutive failures, whatever the row's attempts."""
    result = _result(DeliveryStatus.RETRY, ErrorClass.CONNECT_REFUSED)
    plan = plan_attempt(result, _row(0), now=NOW, rng=NoJitter(), failures=4)
    assert plan.pause_until == NOW + 16.0
    assert plan.outcome.next_attempt_at == NOW + 1.0


def test_retry_after_floor_on_5xx() -> None:
    """A 503 with a Retry-After longer than the backoff waits the Retry-After."""
    result = _result(DeliveryStatus.RETRY, ErrorClass.HTTP_SERVER_ERROR, retry_after=10.0)
    plan = plan_attempt(result, _row(0), now=NOW, rng=NoJitter(), failures=0)
    assert plan.outcome.next_attempt_at == NOW + 10.0


@pytest.mark.parametrize("error_class", [ErrorClass.HTTP_NOT_FOUND, ErrorClass.HTTP_UNAUTHORIZED,
                                         ErrorClass.SMTP_AUTH_FAILED])
def test_misconfigured_holds(error_class: ErrorClass) -> None:
    """A misconfiguration moves the row to held, without a retry time, and marks the channel misconfigured."""
    result = _result(DeliveryStatus.MISCONFIGURED, error_class, response_body="invalid_token")
    plan = plan_attempt(result, _row(), now=NOW, rng=NoJitter(), failures=0)
    assert plan.outcome.row_status == "held"
    assert plan.outcome.next_attempt_at is None
    assert plan.outcome.response_body == "invalid_token"
    assert plan.update is not None
    assert plan.update.state == "misconfigured"


def test_failed_dead_letters() -> None:
    """A notice rejected for good goes to the dead-letter list and leaves the channel's health alone."""
    plan = plan_attempt(_result(DeliveryStatus.FAILED, ErrorClass.HTTP_REJECTED), _row(), now=NOW,
                        rng=NoJitter(), failures=0)
    assert plan.outcome.row_status == "dead"
    assert plan.update is None


def test_retry_after_24h_dead() -> None:
    """A retry of a notice created 24 h ago moves it to the dead-letter list instead."""
    result = _result(DeliveryStatus.RETRY, ErrorClass.HTTP_SERVER_ERROR)
    plan = plan_attempt(result, _row(40, created_at=NOW - MAX_NOTICE_AGE), now=NOW, rng=NoJitter(), failures=40)
    assert plan.outcome.row_status == "dead"
    assert "dead-letter" in plan.outcome.message
    assert plan.update is not None
    assert plan.update.state == "failing"


def test_config_hash_tracks_changes() -> None:
    """The config hash changes with the channel's settings and not with dict order."""
    first = WebhookChannel.model_validate({"type": "webhook", "url": "https://h.example/a", "timeout": 5})
    same = WebhookChannel.model_validate({"timeout": 5, "url": "https://h.example/a", "type": "webhook"})
    other = WebhookChannel.model_validate({"type": "webhook", "url": "https://h.example/b", "timeout": 5})
    slack = SlackChannel.model_validate({"type": "slack", "webhook_url_env": "SLACK_URL"})
    assert channel_config_hash(first) == channel_config_hash(same)
    assert channel_config_hash(first) != channel_config_hash(other)
    assert len(channel_config_hash(slack)) == 16
