"""Config models of the `channels` section: one entry per named notification channel.

```json
"channels": {
  "email": {"type": "email", "host": "smtp.example.org", "port": 587, "tls": "starttls",
            "username": "atlas", "password_env": "ATLAS_SMTP_PASSWORD",
            "from": "atlas@example.org", "to": ["oncall@example.org"]},
  "slack": {"type": "slack", "webhook_url_env": "ATLAS_SLACK_WEBHOOK_URL"},
  "ops-webhook": {"type": "webhook", "url": "https://hooks.example.org/atlas",
                  "secret_env": "ATLAS_WEBHOOK_SECRET", "format": "standard"},
  "alertmanager": {"type": "alertmanager", "url": "http://alertmanager.example.org:9093",
                   "resend_interval": "1m", "external_labels": {"dc": "fra1"}}
}
```

Rules name channels by their key. `atlas_tui.config.Config` stores the section as
`dict[str, ChannelConfig]`, and `type` selects the model. Secrets are references (an
environment variable or a file) resolved at send time by `resolve_secret`; the JSON
never contains them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from atlas_tui.durations import Duration

__all__ = [
    "AlertmanagerChannel",
    "ChannelConfig",
    "ChannelsConfig",
    "EmailChannel",
    "SlackChannel",
    "WebhookChannel",
    "parse_channels",
]

TlsMode = Literal["starttls", "implicit", "none"]
WebhookFormat = Literal["standard", "alertmanager_v4"]

_DEFAULT_SMTP_PORTS: dict[str, int] = {"starttls": 587, "implicit": 465, "none": 25}
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    timeout: Duration = Field(default=10.0, gt=0)
    """Seconds allowed for connecting and for each reply; a hung receiver ends there."""
    send_resolved: bool = True
    """Set to false to send no resolved notices on this channel."""
    rate_per_second: float | None = Field(default=None, gt=0)
    """Maximum notices per second on this channel; unset means no cap."""


class EmailChannel(_Channel):
    """Email over SMTP."""

    type: Literal["email"]
    """Selects this model."""
    host: str = Field(min_length=1)
    """SMTP server host name; with TLS the certificate must match it."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """SMTP port; unset means 587 for starttls, 465 for implicit, 25 for none."""
    tls: TlsMode = "starttls"
    """`starttls` (plain connect, then STARTTLS), `implicit` (TLS from the first byte) or `none`."""
    username: str | None = None
    """SMTP AUTH user; unset means no AUTH."""
    password_env: str | None = None
    """Environment variable holding the SMTP password."""
    password_file: str | None = None
    """File holding the SMTP password, as an alternative to `password_env`."""
    from_: str = Field(alias="from", min_length=3)
    """Sender address, optionally with a display name (`ATLAS <atlas@example.org>`)."""
    to: list[str] = Field(min_length=1)
    """Recipient addresses."""
    ca_file: str | None = None
    """PEM file of the CA (or self-signed certificate) to trust instead of the system store."""

    @field_validator("from_")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("to")
    @classmethod
    def _check_recipients(cls, values: list[str]) -> list[str]:
        return [_check_address(value) for value in values]

    @model_validator(mode="after")
    def _check_auth(self) -> EmailChannel:
        _at_most_one(self.password_env, self.password_file, "password_env", "password_file")
        has_password = bool(self.password_env or self.password_file)
        if self.username and not has_password:
            raise ValueError("username is set but no password; set password_env or password_file")
        if has_password and not self.username:
            raise ValueError("a password is set but no username; set username or remove the password")
        return self

    @property
    def smtp_port(self) -> int:
        """The configured port, or the standard port of the TLS mode."""
        return self.port if self.port is not None else _DEFAULT_SMTP_PORTS[self.tls]

    @property
    def envelope_from(self) -> str:
        """The bare sender address for `MAIL FROM`."""
        from email.utils import parseaddr

        return parseaddr(self.from_)[1]


class SlackChannel(_Channel):
    """Slack incoming webhook; the webhook URL is a secret because it grants posting."""

    type: Literal["slack"]
    """Selects this model."""
    webhook_url_env: str | None = None
    """Environment variable holding the incoming-webhook URL."""
    webhook_url_file: str | None = None
    """File holding the incoming-webhook URL, as an alternative to `webhook_url_env`."""
    rate_per_second: float | None = Field(default=1.0, gt=0)
    """Slack accepts about one message per second per webhook and returns HTTP 429 above that."""

    @model_validator(mode="after")
    def _check_url_source(self) -> SlackChannel:
        _at_most_one(self.webhook_url_env, self.webhook_url_file, "webhook_url_env", "webhook_url_file")
        if not (self.webhook_url_env or self.webhook_url_file):
            raise ValueError("set webhook_url_env or webhook_url_file to where the Slack webhook URL is kept")
        return self


class WebhookChannel(_Channel):
    """Generic HTTP webhook, signed per Standard Webhooks when a secret is configured."""

    type: Literal["webhook"]
    """Selects this model."""
    url: str
    """http or https URL the notices are POSTed to; logs show only its scheme and host."""
    secret_env: str | None = None
    """Environment variable holding the signing secret (`whsec_<base64>` or any text)."""
    secret_file: str | None = None
    """File holding the signing secret, as an alternative to `secret_env`."""
    format: WebhookFormat = "standard"
    """Body format: `standard` (ATLAS JSON) or `alertmanager_v4` (Alertmanager webhook v4)."""
    max_alerts: int = Field(default=0, ge=0)
    """Maximum alerts per body; the rest are counted in `truncatedAlerts`. 0 sends all."""
    github_signature: bool = False
    """Also send `X-Hub-Signature-256` for receivers that only check GitHub-style signatures."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _check_secret(self) -> WebhookChannel:
        _at_most_one(self.secret_env, self.secret_file, "secret_env", "secret_file")
        if self.github_signature and not (self.secret_env or self.secret_file):
            raise ValueError("github_signature needs a secret; set secret_env or secret_file")
        return self


class AlertmanagerChannel(_Channel):
    """Alertmanager's API v2: alerts go to `<url>/api/v2/alerts` and are re-sent while open."""

    type: Literal["alertmanager"]
    """Selects this model."""
    url: str
    """Base URL of the Alertmanager (`http://alertmanager:9093`), with its route prefix if it has one."""
    resend_interval: Duration = Field(default=60.0, ge=1.0, le=3600.0)
    """Time between two re-sends of every open incident. Each alert is sent with an
    `endsAt` four intervals ahead, so Alertmanager resolves it by itself when the
    daemon stops sending."""
    external_labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to every alert that has no label of that name (`{"dc": "fra1"}`).
    `host` defaults to this machine's host name. Set it here to name the daemon differently."""
    bearer_token_env: str | None = None
    """Environment variable holding a bearer token for an Alertmanager behind an authenticating proxy."""
    bearer_token_file: str | None = None
    """File holding the bearer token, as an alternative to `bearer_token_env`."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host, such as http://127.0.0.1:9093")
        if parts.query or parts.fragment:
            raise ValueError("expected the Alertmanager's base URL without a query or fragment")
        return value.rstrip("/")

    @field_validator("external_labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        invalid = [name for name in labels if not _LABEL_NAME.fullmatch(name) or name.startswith("__")]
        if invalid:
            raise ValueError(
                f"invalid label name {invalid[0]!r}; use letters, digits and _, not starting with a digit or __"
            )
        return labels

    @model_validator(mode="after")
    def _check_token(self) -> AlertmanagerChannel:
        _at_most_one(self.bearer_token_env, self.bearer_token_file, "bearer_token_env", "bearer_token_file")
        return self


ChannelConfig = Annotated[
    EmailChannel | SlackChannel | WebhookChannel | AlertmanagerChannel, Field(discriminator="type")
]
"""One channel's config; the `type` key selects email, slack, webhook or alertmanager."""

ChannelsConfig = dict[str, ChannelConfig]
"""The `channels` section: channel name to its config."""

_CHANNELS_ADAPTER: TypeAdapter[ChannelsConfig] = TypeAdapter(ChannelsConfig)


def parse_channels(data: object) -> ChannelsConfig:
    """Validate a `channels` section read from JSON.

    Raises:
        pydantic.ValidationError: a channel has an unknown type, key or invalid value.
    """
    return _CHANNELS_ADAPTER.validate_python(data)


def _at_most_one(first: str | None, second: str | None, first_key: str, second_key: str) -> None:
    if first and second:
        raise ValueError(f"set either {first_key} or {second_key}, not both")


def _check_address(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("an email address cannot contain a line break")
    # Imported here so that reading a config without email channels skips the email package.
    from email.utils import parseaddr

    address = parseaddr(value)[1]
    if "@" not in address:
        raise ValueError(f"expected an email address such as atlas@example.org, got {value!r}")
    return value
