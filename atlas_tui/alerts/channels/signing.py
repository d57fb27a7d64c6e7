"""Webhook signatures: Standard Webhooks 1.0 (sign and verify) and the GitHub-style header.

Standard Webhooks: the sender puts three headers on every request,

- `webhook-id`: the message id, the same on every retry so receivers can dedupe;
- `webhook-timestamp`: Unix seconds of this attempt;
- `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`;
  several space-separated signatures may be present during key rotation.

The key is the base64-decoded part of a `whsec_<base64>` secret. A secret without
the `whsec_` prefix is used as its raw UTF-8 bytes, so operators can also paste an
arbitrary shared string. A receiver verifies against the raw body bytes, compares in
constant time and rejects timestamps more than 5 minutes away from its clock.

GitHub style: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`, keyed
with the secret text exactly as configured (including any `whsec_` prefix), which is
what a GitHub-style receiver is given. It has no replay protection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from atlas_tui.alerts.channels.errors import SecretInvalidError, WebhookVerificationError

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "github_signature",
    "signing_key",
    "standard_signature",
    "verify_standard_webhook",
]

SECRET_PREFIX = "whsec_"
"""Prefix of a Standard Webhooks secret whose remainder is the base64 key."""
DEFAULT_TOLERANCE = 300.0
"""Seconds a receiver accepts between a request's timestamp and its own clock."""


def signing_key(secret: str, *, channel: str = "webhook") -> bytes:
    """Derive the HMAC key: base64-decode after `whsec_`, else the secret's UTF-8 bytes.

    Raises:
        SecretInvalidError: the part after `whsec_` is not valid base64.
    """
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode("utf-8")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise SecretInvalidError(
            channel, "the webhook secret starts with whsec_ but the rest is not valid base64"
        ) from None


def standard_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """Return the `webhook-signature` value `v1,<base64>` for one attempt."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def github_signature(secret: str, body: bytes) -> str:
    """Return the `X-Hub-Signature-256` value `sha256=<hex>` over the raw body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_standard_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """Verify a request signed per Standard Webhooks and return its `webhook-id`.

    Args:
        secret: The shared secret (`whsec_<base64>` or raw text).
        headers: Request headers; names are matched case-insensitively.
        body: The raw request body, exactly as received.
        now: The receiver's clock, UTC epoch seconds.
        tolerance: Seconds the timestamp may differ from `now` in either direction.

    Raises:
        WebhookVerificationError: a header is missing, the timestamp is invalid or
            outside the tolerance, or no `v1` signature matches.
        SecretInvalidError: the secret has the `whsec_` prefix but is not base64.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = _required(lowered, "webhook-id")
    timestamp = _check_timestamp(_required(lowered, "webhook-timestamp"), now, tolerance)
    expected = standard_signature(signing_key(secret), message_id, timestamp, body)
    for candidate in _required(lowered, "webhook-signature").split():
        # Other versions (such as asymmetric v1a) are skipped, not treated as failures.
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected.encode()):
            return message_id
    raise WebhookVerificationError("no_matching_signature", "no v1 signature matches the body and secret")


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise WebhookVerificationError("missing_header", f"the {name} header is missing")
    return value


def _check_timestamp(text: str, now: float, tolerance: float) -> int:
    if not (text.isascii() and text.isdigit()):
        raise WebhookVerificationError("invalid_timestamp", f"webhook-timestamp {text!r} is not Unix seconds")
    timestamp = int(text)
    if timestamp < now - tolerance:
        raise WebhookVerificationError(
            "timestamp_too_old", f"webhook-timestamp {timestamp} is more than {tolerance:g} s old"
        )
    if timestamp > now + tolerance:
        raise WebhookVerificationError(
            "timestamp_too_new", f"webhook-timestamp {timestamp} is more than {tolerance:g} s ahead"
        )
    return timestamp
