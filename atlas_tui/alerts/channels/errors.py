"""Errors raised by the notification channels.

    AtlasError
    └── AlertError                    base of the alert engine's errors
        └── ChannelError              base of every error in this package
            ├── SecretError               a channel's secret cannot be used
            │   ├── SecretUnavailableError  the named environment variable or file is missing or empty
            │   └── SecretInvalidError      the secret is present but malformed
            ├── SmtpDeliveryError         an SMTP session failed; carries the named error class
            └── WebhookVerificationError  an inbound webhook's signature headers do not verify

A failed delivery is not an exception: `dispatch.send` returns it as a
`DeliveryResult` whose `error_class` names the failure, so the outbox can store it
and the console can show it. These exceptions cover what happens before a delivery
starts (secrets) and what a receiver checks (signatures).
"""

from __future__ import annotations

from atlas_tui.alerts.channels.result import DeliveryStatus, ErrorClass
from atlas_tui.alerts.errors import AlertError

__all__ = [
    "ChannelError",
    "SecretError",
    "SecretInvalidError",
    "SecretUnavailableError",
    "SmtpDeliveryError",
    "WebhookVerificationError",
]


class ChannelError(AlertError):
    """Base of the errors raised by notification channels."""


class SecretError(ChannelError):
    """Raised when a channel's secret cannot be used; the message never contains it."""

    def __init__(self, channel: str, problem: str) -> None:
        self.channel = channel
        self.problem = problem
        super().__init__(f"channel {channel}: {problem}")


class SecretUnavailableError(SecretError):
    """Raised when the environment variable or file containing a secret is missing or empty."""


class SecretInvalidError(SecretError):
    """Raised when a secret is present but malformed, such as a `whsec_` key that is not base64."""


class SmtpDeliveryError(ChannelError):
    """Raised inside the SMTP worker thread when a session fails.

    `send_email` turns it into a `DeliveryResult`; the message names host:port, the
    step that failed and what to change in the channel's config.
    """

    def __init__(self, error_class: ErrorClass, status: DeliveryStatus, message: str, reply: str = "") -> None:
        self.error_class = error_class
        self.status = status
        self.reply = reply
        super().__init__(message)


class WebhookVerificationError(ChannelError):
    """Raised by `verify_standard_webhook` when a request must be rejected.

    `reason` is a short machine-readable word (`missing_header`, `timestamp_too_old`,
    `timestamp_too_new`, `invalid_timestamp`, `no_matching_signature`).
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"webhook verification failed ({reason}): {detail}")
