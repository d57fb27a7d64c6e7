"""One HTTP POST to a Slack or webhook receiver, classified into a `DeliveryResult`.

Slack and webhook senders build the body and headers, then call `post_json`. It
bounds the attempt in time, reads at most a few KiB of the response and maps the
outcome:

- 2xx: delivered.
- 429: retry, honouring `Retry-After` (seconds or an HTTP-date).
- 400, 401, 403, 404, 410 and redirects: misconfigured, not retried.
- other 4xx: failed, since this notice will never be accepted.
- 408, 5xx, timeouts, refused or reset connections: retry.

Invariant: messages show the receiver as scheme://host[:port] (`redact_url`), never
the full URL, because Slack and many webhook URLs carry their token in the path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

import httpx

from atlas_tui.alerts.channels.credentials import redact_url
from atlas_tui.alerts.channels.result import (
    RESPONSE_BODY_LIMIT,
    DeliveryResult,
    DeliveryStatus,
    ErrorClass,
    truncate_body,
)

__all__ = ["USER_AGENT", "classify_response", "new_client", "parse_retry_after", "post_json"]

USER_AGENT = "atlas-ops notifier"
"""User-Agent of every notification request."""

_READ_LIMIT = 4 * RESPONSE_BODY_LIMIT
_SNIPPET = 200

# Status codes that mean the channel's URL or credentials are wrong, with the fix.
_MISCONFIGURED: dict[int, tuple[ErrorClass, str]] = {
    400: (ErrorClass.HTTP_BAD_REQUEST, "the receiver rejected the request; check the channel's format"),
    401: (ErrorClass.HTTP_UNAUTHORIZED, "check the channel's secret"),
    403: (ErrorClass.HTTP_FORBIDDEN, "check the channel's URL and secret"),
    404: (ErrorClass.HTTP_NOT_FOUND, "the URL is wrong or the webhook was revoked; update the channel's URL"),
    410: (ErrorClass.HTTP_GONE, "the webhook was removed; configure a new URL"),
}


def new_client() -> httpx.AsyncClient:
    """Create the HTTP client senders use when the caller passes none.

    Proxy variables are ignored and redirects are not followed, so a notice goes
    only to the configured host.
    """
    return httpx.AsyncClient(trust_env=False, follow_redirects=False, headers={"User-Agent": USER_AGENT})


async def post_json(
    channel: str,
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    now: float,
) -> DeliveryResult:
    """POST `body` as JSON to `url` and classify the outcome.

    `timeout` bounds the connect and each read; the whole attempt, including a
    response that trickles in, ends within twice `timeout`.

    Args:
        channel: Channel name for messages.
        client: The HTTP client; its own timeout settings are overridden.
        url: Full receiver URL; only its scheme and host appear in the result.
        body: The exact bytes to send (signatures cover these bytes).
        headers: Extra headers such as signatures.
        timeout: Seconds, from the channel config.
        now: UTC epoch seconds of the attempt, used to read an HTTP-date `Retry-After`.
    """
    _quiet_request_log()
    target = redact_url(url)
    started = time.perf_counter()
    request_headers = {"Content-Type": "application/json", **headers}
    try:
        async with asyncio.timeout(2 * timeout):
            status, response_headers, text = await _exchange(client, url, body, request_headers, timeout)
    except TimeoutError:
        result = _timeout(channel, target, ErrorClass.TIMEOUT, f"no complete response within {2 * timeout:g} s")
    except httpx.HTTPError as err:
        result = _classify_transport_error(channel, target, err, timeout)
    else:
        result = classify_response(channel, target, status, response_headers, text, now=now)
    return result.model_copy(update={"latency_ms": _elapsed_ms(started)})


def classify_response(
    channel: str,
    target: str,
    status: int,
    headers: Mapping[str, str],
    text: str,
    *,
    now: float,
) -> DeliveryResult:
    """Map an HTTP response to a `DeliveryResult` (see the module docstring for the table)."""
    body = truncate_body(text)
    where = f"channel {channel}: {target} answered HTTP {status}"
    snippet = _snippet(text)
    if 200 <= status < 300:
        return DeliveryResult(status=DeliveryStatus.DELIVERED, http_status=status, response_body=body,
                              message=f"{where}; delivered")
    if 300 <= status < 400:
        location = redact_url(headers.get("location", "")) if headers.get("location") else "another URL"
        return DeliveryResult(status=DeliveryStatus.MISCONFIGURED, error_class=ErrorClass.HTTP_REDIRECT,
                              http_status=status, response_body=body,
                              message=f"{where} redirecting to {location}; set the channel's URL to the final address")
    if status in _MISCONFIGURED:
        error_class, fix = _MISCONFIGURED[status]
        return DeliveryResult(status=DeliveryStatus.MISCONFIGURED, error_class=error_class, http_status=status,
                              response_body=body, message=f"{where}{snippet}; {fix}")
    if status == 429 or status >= 500 or status == 408:
        return _retryable_status(where + snippet, status, headers, body, now=now)
    return DeliveryResult(status=DeliveryStatus.FAILED, error_class=ErrorClass.HTTP_REJECTED, http_status=status,
                          response_body=body, message=f"{where}{snippet}; the notice is not retried")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Parse a `Retry-After` header into seconds from `now`.

    Accepts delay-seconds (`3`, also `2.5`) and an HTTP-date; a date in the past gives 0.

    Returns:
        Seconds to wait, or None when the header is absent or invalid.
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_date(text, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


async def _exchange(
    client: httpx.AsyncClient, url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> tuple[int, httpx.Headers, str]:
    # Streaming means a receiver that sends megabytes costs only the first few KiB.
    request = client.build_request("POST", url, content=body, headers=headers, timeout=httpx.Timeout(timeout))
    response = await client.send(request, stream=True)
    try:
        received = bytearray()
        async for chunk in response.aiter_bytes():
            received += chunk
            if len(received) >= _READ_LIMIT:
                break
    finally:
        await response.aclose()
    return response.status_code, response.headers, received.decode("utf-8", errors="replace")


def _retryable_status(
    where: str, status: int, headers: Mapping[str, str], body: str, *, now: float
) -> DeliveryResult:
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if status == 429:
        error_class, reason = ErrorClass.HTTP_RATE_LIMITED, "rate limited"
    elif status == 408:
        error_class, reason = ErrorClass.TIMEOUT, "request timed out at the receiver"
    else:
        error_class, reason = ErrorClass.HTTP_SERVER_ERROR, "receiver error"
    wait = f"retry after {retry_after:g} s" if retry_after is not None else "will retry"
    return DeliveryResult(status=DeliveryStatus.RETRY, error_class=error_class, http_status=status,
                          retry_after=retry_after, response_body=body, message=f"{where}; {reason}, {wait}")


def _classify_transport_error(channel: str, target: str, err: httpx.HTTPError, timeout: float) -> DeliveryResult:
    if isinstance(err, httpx.ConnectTimeout):
        return _timeout(channel, target, ErrorClass.CONNECT_TIMEOUT, f"connect timed out after {timeout:g} s")
    if isinstance(err, httpx.ReadTimeout):
        return _timeout(channel, target, ErrorClass.READ_TIMEOUT,
                        f"no response within {timeout:g} s; it may have been delivered, so the retry keeps its id")
    if isinstance(err, httpx.TimeoutException):
        return _timeout(channel, target, ErrorClass.WRITE_TIMEOUT, f"sending timed out after {timeout:g} s")
    if isinstance(err, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return _result(DeliveryStatus.MISCONFIGURED, ErrorClass.INVALID_URL,
                       f"channel {channel}: invalid URL ({target}); use an http:// or https:// URL")
    if isinstance(err, httpx.ConnectError):
        return _classify_connect_error(channel, target, err)
    return _result(DeliveryStatus.RETRY, ErrorClass.PROTOCOL_ERROR,
                   f"channel {channel}: {target} closed the connection without a valid response "
                   f"({type(err).__name__}); will retry")


def _classify_connect_error(channel: str, target: str, err: httpx.ConnectError) -> DeliveryResult:
    cause = _root_cause(err)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return _result(DeliveryStatus.MISCONFIGURED, ErrorClass.TLS_ERROR,
                       f"channel {channel}: the TLS certificate of {target} is not trusted "
                       f"({cause.verify_message}); fix the receiver's certificate")
    if isinstance(cause, ssl.SSLError):
        return _result(DeliveryStatus.MISCONFIGURED, ErrorClass.TLS_ERROR,
                       f"channel {channel}: TLS handshake with {target} failed ({cause.reason}); "
                       "check that the URL's scheme matches the receiver")
    if isinstance(cause, ConnectionRefusedError):
        return _result(DeliveryStatus.RETRY, ErrorClass.CONNECT_REFUSED,
                       f"channel {channel}: connection refused by {target}; check the host and port, will retry")
    return _result(DeliveryStatus.RETRY, ErrorClass.CONNECT_ERROR,
                   f"channel {channel}: cannot connect to {target} ({cause}); will retry")


def _quiet_request_log() -> None:
    # httpx logs every request's full URL at INFO, and Slack webhook URLs carry their
    # token in the path. An explicitly configured level is left alone.
    httpx_logger = logging.getLogger("httpx")
    if httpx_logger.level == logging.NOTSET:
        httpx_logger.setLevel(logging.WARNING)


def _root_cause(err: BaseException) -> BaseException:
    seen: set[int] = set()
    current = err
    while id(current) not in seen:
        seen.add(id(current))
        following = current.__cause__ or current.__context__
        if following is None:
            break
        current = following
    return current


def _timeout(channel: str, target: str, error_class: ErrorClass, detail: str) -> DeliveryResult:
    return _result(DeliveryStatus.RETRY, error_class, f"channel {channel}: {target}: {detail}")


def _result(status: DeliveryStatus, error_class: ErrorClass, message: str) -> DeliveryResult:
    return DeliveryResult(status=status, error_class=error_class, message=message)


def _seconds_until_date(text: str, now: float) -> float | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now)


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    if not flat:
        return ""
    if len(flat) > _SNIPPET:
        flat = flat[:_SNIPPET] + "…"
    return f" ({flat})"


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 1)
