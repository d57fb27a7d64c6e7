"""Standard Webhooks signatures on outgoing webhooks, checked by a verifier written from the spec."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest

from atlas_tui.alerts.channels.dispatch import send
from atlas_tui.alerts.channels.errors import WebhookVerificationError
from atlas_tui.alerts.channels.models import WebhookChannel
from atlas_tui.alerts.channels.result import DeliveryStatus, ErrorClass
from atlas_tui.alerts.channels.signing import signing_key, standard_signature, verify_standard_webhook
from tests.alerts.receivers import HttpReceiver, RecordedRequest, Reply, sample_notice

NOW = 1736846000.0
KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A webhook receiver returning 200."""
    with HttpReceiver() as running:
        yield running


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch, receiver: HttpReceiver) -> WebhookChannel:
    """A webhook channel whose secret is in the environment."""
    monkeypatch.setenv("ATLAS_TEST_WEBHOOK_SECRET", SECRET)
    return WebhookChannel.model_validate(
        {"type": "webhook", "url": receiver.url, "secret_env": "ATLAS_TEST_WEBHOOK_SECRET"}
    )


def _spec_signature(key: bytes, request: RecordedRequest) -> str:
    """Compute the v1 signature independently of the module under test."""
    content = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


async def test_headers_present(receiver: HttpReceiver, signed: WebhookChannel) -> None:
    """Every webhook carries id, timestamp and signature; the id is the notice id."""
    await send("ops-webhook", signed, sample_notice(), now=NOW)
    headers = receiver.requests[0].headers
    assert headers["webhook-id"] == "ntc_0001"
    assert headers["webhook-timestamp"] == str(int(NOW))
    assert headers["webhook-signature"].startswith("v1,")


async def test_signature_matches_spec(receiver: HttpReceiver, signed: WebhookChannel) -> None:
    """The signature is base64 HMAC-SHA256 of `id.timestamp.body` with the decoded whsec key."""
    await send("ops-webhook", signed, sample_notice(), now=NOW)
    request = receiver.requests[0]
    assert request.headers["webhook-signature"] == _spec_signature(KEY, request)


async def test_receiver_verifies(receiver: HttpReceiver, signed: WebhookChannel) -> None:
    """The spec verifier accepts the delivered request and returns its id."""
    await send("ops-webhook", signed, sample_notice(), now=NOW)
    request = receiver.requests[0]
    assert verify_standard_webhook(SECRET, request.headers, request.body, now=NOW + 2) == "ntc_0001"


async def test_retry_same_id_fresh_signature(receiver: HttpReceiver, signed: WebhookChannel) -> None:
    """A retry keeps the webhook-id and sends a new timestamp and signature over the same body."""
    receiver.script(Reply(status=503))
    first = await send("ops-webhook", signed, sample_notice(), now=NOW)
    second = await send("ops-webhook", signed, sample_notice(), now=NOW + 61)
    before, after = receiver.requests
    assert first.status is DeliveryStatus.RETRY
    assert second.ok
    assert after.headers["webhook-id"] == before.headers["webhook-id"]
    assert after.headers["webhook-timestamp"] == str(int(NOW + 61))
    assert after.headers["webhook-signature"] != before.headers["webhook-signature"]
    assert after.body == before.body
    assert verify_standard_webhook(SECRET, after.headers, after.body, now=NOW + 61) == "ntc_0001"


async def test_github_signature(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """With github_signature on, X-Hub-Signature-256 is the hex HMAC of the raw body with the secret text."""
    monkeypatch.setenv("ATLAS_TEST_WEBHOOK_SECRET", SECRET)
    config = WebhookChannel.model_validate({"type": "webhook", "url": receiver.url,
                                            "secret_env": "ATLAS_TEST_WEBHOOK_SECRET", "github_signature": True})
    await send("ops-webhook", config, sample_notice(), now=NOW)
    request = receiver.requests[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-hub-signature-256"] == expected


async def test_no_github_signature_by_default(receiver: HttpReceiver, signed: WebhookChannel) -> None:
    """X-Hub-Signature-256 is sent only when asked for."""
    await send("ops-webhook", signed, sample_notice(), now=NOW)
    assert "x-hub-signature-256" not in receiver.requests[0].headers


async def test_unsigned_without_secret(receiver: HttpReceiver) -> None:
    """Without a secret the id and timestamp are sent but no signature."""
    config = WebhookChannel.model_validate({"type": "webhook", "url": receiver.url})
    await send("ops-webhook", config, sample_notice(), now=NOW)
    headers = receiver.requests[0].headers
    assert headers["webhook-id"] == "ntc_0001"
    assert "webhook-signature" not in headers


async def test_standard_body_round_trips(receiver: HttpReceiver, signed: WebhookChannel) -> None:
    """The standard body carries the notice as its JSON model."""
    await send("ops-webhook", signed, sample_notice(), now=NOW)
    body = json.loads(receiver.requests[0].body)
    assert body["type"] == "alert.firing"
    assert body["data"]["alerts"][0]["fingerprint"] == "a81c0d2e4f7b9931"
    assert body["data"]["truncated_alerts"] == 0


async def test_secret_never_logged(
    receiver: HttpReceiver, signed: WebhookChannel, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the secret nor its key appear in the log or the result."""
    caplog.set_level("DEBUG")
    result = await send("ops-webhook", signed, sample_notice(), now=NOW)
    assert SECRET not in caplog.text
    assert SECRET not in result.model_dump_json()


async def test_invalid_whsec_misconfigured(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whsec_ secret that is not base64 is a misconfiguration, not a crash."""
    monkeypatch.setenv("ATLAS_TEST_WEBHOOK_SECRET", "whsec_not*base64!")
    config = WebhookChannel.model_validate({"type": "webhook", "url": receiver.url,
                                            "secret_env": "ATLAS_TEST_WEBHOOK_SECRET"})
    result = await send("ops-webhook", config, sample_notice(), now=NOW)
    assert result.error_class is ErrorClass.SECRET_INVALID
    assert "not*base64" not in result.message


def test_raw_secret_used_as_utf8() -> None:
    """A secret without the whsec_ prefix is its own UTF-8 key."""
    assert signing_key("plain shared secret") == b"plain shared secret"


def _signed_headers(secret: str, body: bytes, timestamp: int, message_id: str = "msg_1") -> dict[str, str]:
    signature = standard_signature(signing_key(secret), message_id, timestamp, body)
    return {"Webhook-Id": message_id, "Webhook-Timestamp": str(timestamp), "Webhook-Signature": signature}


def test_verify_rejects_tampered_body() -> None:
    """A body changed after signing does not verify."""
    headers = _signed_headers(SECRET, b'{"a":1}', int(NOW))
    with pytest.raises(WebhookVerificationError) as caught:
        verify_standard_webhook(SECRET, headers, b'{"a":2}', now=NOW)
    assert caught.value.reason == "no_matching_signature"


def test_verify_rejects_other_secret() -> None:
    """A signature made with another secret does not verify."""
    headers = _signed_headers("whsec_" + base64.b64encode(b"other").decode(), b"{}", int(NOW))
    with pytest.raises(WebhookVerificationError):
        verify_standard_webhook(SECRET, headers, b"{}", now=NOW)


@pytest.mark.parametrize(("offset", "reason"), [(-301, "timestamp_too_old"), (301, "timestamp_too_new")])
def test_verify_rejects_stale_timestamp(offset: int, reason: str) -> None:
    """Timestamps more than 5 minutes from the receiver's clock are rejected either way."""
    headers = _signed_headers(SECRET, b"{}", int(NOW) + offset)
    with pytest.raises(WebhookVerificationError) as caught:
        verify_standard_webhook(SECRET, headers, b"{}", now=NOW)
    assert caught.value.reason == reason


def test_verify_accepts_within_tolerance() -> None:
    """A timestamp 299 s old still verifies."""
    headers = _signed_headers(SECRET, b"{}", int(NOW) - 299)
    assert verify_standard_webhook(SECRET, headers, b"{}", now=NOW) == "msg_1"


def test_verify_accepts_rotated_signatures() -> None:
    """Several space-separated signatures verify when one of them matches."""
    headers = _signed_headers(SECRET, b"{}", int(NOW))
    headers["Webhook-Signature"] = "v1,AAAA v1a,ignored " + headers["Webhook-Signature"]
    assert verify_standard_webhook(SECRET, headers, b"{}", now=NOW) == "msg_1"


@pytest.mark.parametrize("missing", ["Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"])
def test_verify_rejects_missing_header(missing: str) -> None:
    """Each of the three headers is required."""
    headers = _signed_headers(SECRET, b"{}", int(NOW))
    del headers[missing]
    with pytest.raises(WebhookVerificationError) as caught:
        verify_standard_webhook(SECRET, headers, b"{}", now=NOW)
    assert caught.value.reason == "missing_header"


def test_verify_rejects_non_numeric_timestamp() -> None:
    """A timestamp that is not Unix seconds is rejected."""
    headers = _signed_headers(SECRET, b"{}", int(NOW))
    headers["Webhook-Timestamp"] = "2025-01-14T09:12:00Z"
    with pytest.raises(WebhookVerificationError) as caught:
        verify_standard_webhook(SECRET, headers, b"{}", now=NOW)
    assert caught.value.reason == "invalid_timestamp"
