"""Notification channels: email (SMTP), Slack incoming webhooks, signed generic webhooks and Alertmanager.

Where this sits: the engine writes a `Notice` into the outbox in the same
transaction as the state change. The outbox worker later calls `send` once per
attempt and stores the returned `DeliveryResult`. This package holds no state and
no store access: pacing (`RateLimiter`) and retry timing (`backoff`,
`retry_delay`) are pure helpers the worker drives with its own clock.

Invariants: secrets are read at send time and never logged; full webhook URLs are
never logged; SMTP runs in a worker thread; every send is bounded by the channel's
`timeout`.

The names below load their module on first use. `atlas_tui.config` needs only
`models`, so reading the config file does not import httpx and the SMTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atlas_tui.lazy import lazy_exports

if TYPE_CHECKING:
    from atlas_tui.alerts.channels.dispatch import (
        BACKOFF_CAP,
        RateLimiter,
        backoff,
        retry_delay,
        send,
        should_send,
    )
    from atlas_tui.alerts.channels.errors import (
        ChannelError,
        SecretError,
        SecretInvalidError,
        SecretUnavailableError,
        SmtpDeliveryError,
        WebhookVerificationError,
    )
    from atlas_tui.alerts.channels.message import Ack, Annotations, Notice, NoticeGroup, NoticeKind, as_group
    from atlas_tui.alerts.channels.models import (
        AlertmanagerChannel,
        ChannelConfig,
        ChannelsConfig,
        EmailChannel,
        SlackChannel,
        WebhookChannel,
        parse_channels,
    )
    from atlas_tui.alerts.channels.probe import describe_result, send_test
    from atlas_tui.alerts.channels.result import DeliveryResult, DeliveryStatus, ErrorClass
    from atlas_tui.alerts.channels.signing import verify_standard_webhook

__all__ = [
    "BACKOFF_CAP",
    "Ack",
    "AlertmanagerChannel",
    "Annotations",
    "ChannelConfig",
    "ChannelError",
    "ChannelsConfig",
    "DeliveryResult",
    "DeliveryStatus",
    "EmailChannel",
    "ErrorClass",
    "Notice",
    "NoticeGroup",
    "NoticeKind",
    "RateLimiter",
    "SecretError",
    "SecretInvalidError",
    "SecretUnavailableError",
    "SlackChannel",
    "SmtpDeliveryError",
    "WebhookChannel",
    "WebhookVerificationError",
    "as_group",
    "backoff",
    "describe_result",
    "parse_channels",
    "retry_delay",
    "send",
    "send_test",
    "should_send",
    "verify_standard_webhook",
]

_MODULE_OF = {
    "BACKOFF_CAP": "dispatch",
    "RateLimiter": "dispatch",
    "backoff": "dispatch",
    "retry_delay": "dispatch",
    "send": "dispatch",
    "should_send": "dispatch",
    "ChannelError": "errors",
    "SecretError": "errors",
    "SecretInvalidError": "errors",
    "SecretUnavailableError": "errors",
    "SmtpDeliveryError": "errors",
    "WebhookVerificationError": "errors",
    "Ack": "message",
    "Annotations": "message",
    "Notice": "message",
    "NoticeGroup": "message",
    "NoticeKind": "message",
    "as_group": "message",
    "AlertmanagerChannel": "models",
    "ChannelConfig": "models",
    "ChannelsConfig": "models",
    "EmailChannel": "models",
    "SlackChannel": "models",
    "WebhookChannel": "models",
    "parse_channels": "models",
    "describe_result": "probe",
    "send_test": "probe",
    "DeliveryResult": "result",
    "DeliveryStatus": "result",
    "ErrorClass": "result",
    "verify_standard_webhook": "signing",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _MODULE_OF)
