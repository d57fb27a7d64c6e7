"""Channel config and receiver-side counting for end-to-end alerting tests.

The config sections built here point the daemon's channels at the local
receivers of `conftest.py`: email over STARTTLS with AUTH to aiosmtpd, Slack and
a Standard Webhooks endpoint to `HookServer`s. Secrets are never written into the
JSON. The config names environment variables, and `channel_env` fills them.

The counting functions turn what a receiver recorded into notice kinds, so a test
can assert "exactly one firing notice on each channel".
"""

from __future__ import annotations

import email
from collections import Counter
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from tests.alerts.receivers import SmtpRecorder
from tests.e2e.hooks import Hit

__all__ = [
    "EVALUATION_INTERVAL",
    "SMTP_USER",
    "Smtp",
    "channel_env",
    "daemon_config",
    "email_channel",
    "mail_kinds",
    "mails",
    "slack_channel",
    "slack_kinds",
    "webhook_channel",
    "webhook_kinds",
]

SMTP_USER = "atlas"
SMTP_PASSWORD_ENV = "ATLAS_E2E_SMTP_PASSWORD"
SLACK_URL_ENV = "ATLAS_E2E_SLACK_URL"
WEBHOOK_SECRET_ENV = "ATLAS_E2E_WEBHOOK_SECRET"

EVALUATION_INTERVAL = 1.0
"""Seconds between two rule evaluations in every e2e daemon."""


@dataclass
class Smtp:
    """A running aiosmtpd server with STARTTLS and AUTH, and what it received."""

    port: int
    recorder: SmtpRecorder
    ca_file: Path
    """The server's self-signed certificate, which the email channel trusts."""
    password: str


def daemon_config(rules: list[dict[str, object]], channels: dict[str, dict[str, object]]) -> dict[str, object]:
    """Return a daemon config with fast collection (0.5 s) and evaluation (`EVALUATION_INTERVAL`)."""
    return {
        "collectors": {"system": {"interval": "0.5s"}, "self_health": {"interval": "0.5s"}},
        "alerting": {"evaluation_interval": f"{EVALUATION_INTERVAL:g}s"},
        "alert_rules": rules,
        "channels": channels,
    }


def email_channel(smtp: Smtp) -> dict[str, object]:
    """Return an email channel for `smtp`: STARTTLS, AUTH with the password from the environment."""
    return {
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.port,
        "tls": "starttls",
        "ca_file": str(smtp.ca_file),
        "username": SMTP_USER,
        "password_env": SMTP_PASSWORD_ENV,
        "from": "ATLAS <atlas@e2e.test>",
        "to": ["oncall@e2e.test"],
        "timeout": "5s",
    }


def slack_channel() -> dict[str, object]:
    """Return a Slack channel whose incoming-webhook URL comes from the environment."""
    return {"type": "slack", "webhook_url_env": SLACK_URL_ENV, "timeout": "5s"}


def webhook_channel(url: str) -> dict[str, object]:
    """Return a Standard Webhooks channel posting to `url`, signed with the secret from the environment."""
    return {"type": "webhook", "url": url, "secret_env": WEBHOOK_SECRET_ENV, "format": "standard", "timeout": "5s"}


def channel_env(*, smtp_password: str = "", slack_url: str = "", webhook_secret: str = "") -> dict[str, str]:
    """Return the environment variables the channel configs name, for the values given."""
    values = {SMTP_PASSWORD_ENV: smtp_password, SLACK_URL_ENV: slack_url, WEBHOOK_SECRET_ENV: webhook_secret}
    return {name: value for name, value in values.items() if value}


def webhook_kinds(hits: list[Hit]) -> Counter[str]:
    """Count the requests a webhook receiver got per notice kind (`firing`, `acknowledge` …)."""
    return Counter(hit.webhook_kind for hit in hits)


def slack_kinds(hits: list[Hit]) -> Counter[str]:
    """Count the messages a Slack receiver got per headline tag (`FIRING`, `RESOLVED` …)."""
    return Counter(hit.slack_kind for hit in hits)


def mails(smtp: Smtp) -> list[Message]:
    """Return the messages the SMTP server accepted, parsed."""
    return [email.message_from_bytes(received.data) for received in smtp.recorder.messages]


def mail_kinds(smtp: Smtp) -> Counter[str]:
    """Count the accepted messages per subject tag (`[FIRING] …` counts as `FIRING`)."""
    kinds: Counter[str] = Counter()
    for message in mails(smtp):
        subject = str(message["Subject"])
        kinds[subject[1 : subject.index("]")] if subject.startswith("[") else subject] += 1
    return kinds
