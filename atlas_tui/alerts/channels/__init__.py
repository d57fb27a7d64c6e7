"""Notification channels: email (SMTP), Slack incoming webhooks, signed generic webhooks and Alertmanager.

Where this sits: the engine writes a `Notice` into the outbox in the same
transaction as the state change. The outbox worker later calls `send` once per
attempt and stores the returned `DeliveryResult`. This package holds no state and
no store access: pacing (`RateLimiter`) and retry timing (`backoff`,
`retry_delay`) are pure helpers the worker drives with its own clock.

Invariants: secrets are read at send time and never logged; full webhook URLs are
never logged; SMTP runs in a worker thread; every send is bounded by the channel's
`timeout`.
"""

from __future__ import annotations

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
