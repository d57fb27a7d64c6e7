"""HTTP delivery classification against a real local receiver: status codes, Retry-After, timeouts."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest

from atlas_tui.alerts.channels.dispatch import send
from atlas_tui.alerts.channels.http_delivery import parse_retry_after
from atlas_tui.alerts.channels.models import WebhookChannel
from atlas_tui.alerts.channels.result import DeliveryStatus, ErrorClass
from tests.alerts.receivers import HttpReceiver, Reply, SilentServer, sample_notice

NOW = 1736846000.0


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A webhook receiver returning 200 unless scripted otherwise."""
    with HttpReceiver() as running:
        yield running


def _webhook(url: str, **extra: object) -> WebhookChannel:
    return WebhookChannel.model_validate({"type": "webhook", "url": url, **extra})


async def _send_with(receiver: HttpReceiver, reply: Reply, **extra: object):  # type: ignore[no-untyped-def]
    receiver.script(reply)
    return await send("ops-webhook", _webhook(receiver.url, **extra), sample_notice(), now=NOW)


async def test_2xx_delivered(receiver: HttpReceiver) -> None:
    """Any 2xx response is a delivery with its status and latency."""
    result = await _send_with(receiver, Reply(status=204, body=b""))
    assert result.ok
    assert result.http_status == 204
    assert result.latency_ms > 0


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, ErrorClass.HTTP_BAD_REQUEST),
        (401, ErrorClass.HTTP_UNAUTHORIZED),
        (403, ErrorClass.HTTP_FORBIDDEN),
        (404, ErrorClass.HTTP_NOT_FOUND),
    ],
)
async def test_client_errors_misconfigured(receiver: HttpReceiver, status: int, error_class: ErrorClass) -> None:
    """400, 401, 403 and 404 are not retried: the channel is misconfigured and the body is kept."""
    result = await _send_with(receiver, Reply(status=status, body=b"no such hook: check token"))
    assert result.status is DeliveryStatus.MISCONFIGURED
    assert result.error_class is error_class
    assert result.response_body == "no such hook: check token"
    assert "no such hook" in result.message


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_retried(receiver: HttpReceiver, status: int) -> None:
    """5xx responses are retried."""
    result = await _send_with(receiver, Reply(status=status, body=b"upstream down"))
    assert result.status is DeliveryStatus.RETRY
    assert result.error_class is ErrorClass.HTTP_SERVER_ERROR


async def test_other_client_error_failed(receiver: HttpReceiver) -> None:
    """A 413 rejects this notice for good without blaming the channel's config."""
    result = await _send_with(receiver, Reply(status=413, body=b"too large"))
    assert result.status is DeliveryStatus.FAILED
    assert result.error_class is ErrorClass.HTTP_REJECTED


async def test_redirect_misconfigured(receiver: HttpReceiver) -> None:
    """A redirect is not followed; the message names only the new host."""
    result = await _send_with(receiver, Reply(status=301, headers={"Location": "https://new.example/p/tok"}))
    assert result.status is DeliveryStatus.MISCONFIGURED
    assert "https://new.example" in result.message
    assert "tok" not in result.message


async def test_429_retry_after_seconds(receiver: HttpReceiver) -> None:
    """429 with `Retry-After: 3` is a retry with `retry_after` 3 s."""
    result = await _send_with(receiver, Reply(status=429, headers={"Retry-After": "3"}))
    assert result.status is DeliveryStatus.RETRY
    assert result.retry_after == 3.0


async def test_429_retry_after_date(receiver: HttpReceiver) -> None:
    """429 with an HTTP-date `Retry-After` is converted to seconds from `now`."""
    result = await _send_with(receiver, Reply(status=429, headers={"Retry-After": formatdate(NOW + 30, usegmt=True)}))
    assert result.retry_after == 30.0


async def test_503_retry_after(receiver: HttpReceiver) -> None:
    """A 503 may also carry `Retry-After`."""
    result = await _send_with(receiver, Reply(status=503, headers={"Retry-After": "7"}))
    assert result.retry_after == 7.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), (" 120 ", 120.0), ("0", 0.0), ("-1", None), ("soon", None), ("", None), (None, None),
     ("nan", None), ("Tue, 14 Jan 2025 09:13:20 GMT", 0.0)],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    """Retry-After accepts seconds and HTTP-dates; a past date means now; junk is ignored."""
    assert parse_retry_after(header, NOW) == expected


async def test_hung_receiver_times_out(receiver: HttpReceiver) -> None:
    """A receiver that accepts and never replies ends at the channel's timeout as a retry."""
    started = time.monotonic()
    result = await _send_with(receiver, Reply(hang=True), timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.status is DeliveryStatus.RETRY
    assert result.error_class is ErrorClass.READ_TIMEOUT
    assert elapsed < 2.0


async def test_slow_receiver_times_out(receiver: HttpReceiver) -> None:
    """A receiver replying after 120 s is abandoned at the timeout, not waited for."""
    started = time.monotonic()
    result = await _send_with(receiver, Reply(delay=120), timeout=0.5)
    assert result.error_class is ErrorClass.READ_TIMEOUT
    assert time.monotonic() - started < 2.0


async def test_silent_tcp_times_out() -> None:
    """A port that accepts TCP and never speaks HTTP ends at the timeout as a retry."""
    with SilentServer() as silent:
        config = _webhook(f"http://127.0.0.1:{silent.port}/hook", timeout=0.5)
        result = await send("ops-webhook", config, sample_notice(), now=NOW)
    assert result.status is DeliveryStatus.RETRY


async def test_connection_refused_retried() -> None:
    """Nothing listening is a retry named `connect_refused`."""
    result = await send("ops-webhook", _webhook("http://127.0.0.1:1/hook", timeout=1), sample_notice(), now=NOW)
    assert result.status is DeliveryStatus.RETRY
    assert result.error_class is ErrorClass.CONNECT_REFUSED


async def test_long_body_truncated(receiver: HttpReceiver) -> None:
    """A huge error body is cut before it is stored."""
    result = await _send_with(receiver, Reply(status=400, body=b"e" * 100_000))
    assert len(result.response_body) < 1100


async def test_full_url_never_logged(receiver: HttpReceiver, caplog: pytest.LogCaptureFixture) -> None:
    """Results and log records show only scheme and host of the webhook URL."""
    caplog.set_level(logging.DEBUG)
    receiver.script(Reply(status=404, body=b"gone"))
    result = await send("ops-webhook", _webhook(receiver.url), sample_notice(), now=NOW)
    assert "secret-token" not in result.message
    assert "secret-token" not in caplog.text
