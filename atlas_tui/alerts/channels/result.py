"""The outcome of one delivery attempt: `DeliveryResult`, its status and error classes.

Every channel's send returns a `DeliveryResult` instead of raising, so the outbox
worker can store it next to the notice and decide what happens next:

| status          | meaning                                   | outbox action                   |
|-----------------|-------------------------------------------|---------------------------------|
| `delivered`     | the receiver accepted the notice          | mark delivered                  |
| `retry`         | transient: 5xx, 429, timeout, refused     | retry after `retry_delay(...)`  |
| `misconfigured` | the channel's config is wrong (401, 404…) | stop retrying, show the channel |
| `failed`        | this notice was rejected for good         | dead-letter the notice          |

Results are pydantic models because they cross into the store as JSON. Messages name
the channel and host:port, never a secret or a full webhook URL.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, computed_field

__all__ = [
    "RESPONSE_BODY_LIMIT",
    "DeliveryResult",
    "DeliveryStatus",
    "ErrorClass",
    "truncate_body",
]

RESPONSE_BODY_LIMIT = 1000
"""Characters of a receiver's response body kept in a result (enough for an error text)."""


class DeliveryStatus(StrEnum):
    """Next step for the outbox after an attempt; `str()` is the stored form."""

    DELIVERED = "delivered"
    RETRY = "retry"
    MISCONFIGURED = "misconfigured"
    FAILED = "failed"


class ErrorClass(StrEnum):
    """Named failure classes shown in the console and logs; `str()` is the stored form."""

    SECRET_MISSING = "secret_missing"
    SECRET_INVALID = "secret_invalid"
    INVALID_URL = "invalid_url"
    INTERNAL_ERROR = "internal_error"

    HTTP_REDIRECT = "http_redirect"
    HTTP_BAD_REQUEST = "http_bad_request"
    HTTP_UNAUTHORIZED = "http_unauthorized"
    HTTP_FORBIDDEN = "http_forbidden"
    HTTP_NOT_FOUND = "http_not_found"
    HTTP_GONE = "http_gone"
    HTTP_REJECTED = "http_rejected"
    HTTP_RATE_LIMITED = "http_rate_limited"
    HTTP_SERVER_ERROR = "http_server_error"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_ERROR = "connect_error"
    CONNECT_TIMEOUT = "connect_timeout"
    READ_TIMEOUT = "read_timeout"
    WRITE_TIMEOUT = "write_timeout"
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"
    PROTOCOL_ERROR = "protocol_error"

    SMTP_CONNECT_REFUSED = "smtp_connect_refused"
    SMTP_CONNECT_TIMEOUT = "smtp_connect_timeout"
    SMTP_CONNECT_FAILED = "smtp_connect_failed"
    SMTP_HOST_NOT_FOUND = "smtp_host_not_found"
    SMTP_TIMEOUT = "smtp_timeout"
    SMTP_DISCONNECTED = "smtp_disconnected"
    SMTP_GREETING_REJECTED = "smtp_greeting_rejected"
    SMTP_WRONG_TLS_MODE = "smtp_wrong_tls_mode"
    SMTP_STARTTLS_UNSUPPORTED = "smtp_starttls_unsupported"
    SMTP_TLS_REQUIRED = "smtp_tls_required"
    SMTP_TLS_HANDSHAKE_FAILED = "smtp_tls_handshake_failed"
    SMTP_CERTIFICATE_UNKNOWN_CA = "smtp_certificate_unknown_ca"
    SMTP_CERTIFICATE_EXPIRED = "smtp_certificate_expired"
    SMTP_CERTIFICATE_INVALID = "smtp_certificate_invalid"
    SMTP_CA_FILE_INVALID = "smtp_ca_file_invalid"
    SMTP_HOSTNAME_MISMATCH = "smtp_hostname_mismatch"
    SMTP_AUTH_UNSUPPORTED = "smtp_auth_unsupported"
    SMTP_AUTH_REQUIRED = "smtp_auth_required"
    SMTP_AUTH_FAILED = "smtp_auth_failed"
    SMTP_SENDER_REFUSED = "smtp_sender_refused"
    SMTP_RECIPIENT_REFUSED = "smtp_recipient_refused"
    SMTP_MESSAGE_REJECTED = "smtp_message_rejected"
    SMTP_TEMPORARY_FAILURE = "smtp_temporary_failure"
    SMTP_PROTOCOL_ERROR = "smtp_protocol_error"


class DeliveryResult(BaseModel):
    """The outcome of one attempt to deliver one notice (or group) to one channel."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: DeliveryStatus
    """Next step for the outbox; see the table in the module docstring."""
    error_class: ErrorClass | None = None
    """Named failure class, None when delivered."""
    message: str = ""
    """One line for the console and the log: what happened, on which host:port, what to change."""
    http_status: int | None = None
    """HTTP status code of the receiver's response, None for SMTP or when none arrived."""
    retry_after: float | None = None
    """Seconds the receiver asked us to wait (HTTP `Retry-After`), None when it did not ask."""
    response_body: str = ""
    """The receiver's response (HTTP body or final SMTP reply), cut to `RESPONSE_BODY_LIMIT`."""
    latency_ms: float = 0.0
    """Milliseconds from the start of the attempt to its outcome."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when the notice was delivered."""
        return self.status is DeliveryStatus.DELIVERED


def truncate_body(text: str, limit: int = RESPONSE_BODY_LIMIT) -> str:
    """Cut a response body to `limit` characters, marking the cut with the count removed."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit})"
