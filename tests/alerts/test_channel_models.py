"""Config models of the `channels` section, secret resolution and URL redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from atlas_tui.alerts.channels.credentials import redact_url, resolve_secret
from atlas_tui.alerts.channels.errors import SecretUnavailableError
from atlas_tui.alerts.channels.models import EmailChannel, SlackChannel, WebhookChannel, parse_channels

ISSUE_SHAPE = {
    "email": {"type": "email", "host": "smtp.example.org", "port": 587, "tls": "starttls",
              "username": "atlas", "password_env": "ATLAS_SMTP_PASSWORD",
              "from": "atlas@example.org", "to": ["oncall@example.org"]},
    "slack": {"type": "slack", "webhook_url_env": "ATLAS_SLACK_WEBHOOK_URL"},
    "ops-webhook": {"type": "webhook", "url": "https://hooks.example.org/atlas",
                    "secret_env": "ATLAS_WEBHOOK_SECRET", "format": "standard"},
}


def test_issue_shape_parses() -> None:
    """The channels example operators start from validates into the three models."""
    channels = parse_channels(ISSUE_SHAPE)
    assert isinstance(channels["email"], EmailChannel)
    assert isinstance(channels["slack"], SlackChannel)
    assert isinstance(channels["ops-webhook"], WebhookChannel)


def test_defaults() -> None:
    """Timeouts default to 10 s, resolved notices are sent, Slack is capped at 1/s."""
    channels = parse_channels(ISSUE_SHAPE)
    assert channels["email"].timeout == 10.0
    assert channels["email"].send_resolved is True
    assert channels["email"].rate_per_second is None
    assert channels["slack"].rate_per_second == 1.0
    assert channels["ops-webhook"].max_alerts == 0
    assert channels["ops-webhook"].github_signature is False


def test_email_from_alias_round_trips() -> None:
    """The `from` key is kept as written when the model is dumped by alias."""
    email = parse_channels(ISSUE_SHAPE)["email"]
    assert email.model_dump(by_alias=True)["from"] == "atlas@example.org"


@pytest.mark.parametrize(("tls", "port"), [("starttls", 587), ("implicit", 465), ("none", 25)])
def test_email_default_port(tls: str, port: int) -> None:
    """Without a port, the standard port of the TLS mode is used."""
    email = EmailChannel.model_validate(
        {"type": "email", "host": "h", "tls": tls, "from": "a@b.example", "to": ["c@d.example"]}
    )
    assert email.smtp_port == port


def test_duration_text_accepted() -> None:
    """Timeouts accept duration text such as `30s`."""
    slack = SlackChannel.model_validate({"type": "slack", "webhook_url_env": "X", "timeout": "30s"})
    assert slack.timeout == 30.0


@pytest.mark.parametrize(
    "channel",
    [
        {"type": "slack"},
        {"type": "slack", "webhook_url_env": "A", "webhook_url_file": "/b"},
        {"type": "webhook", "url": "ftp://example.org/x"},
        {"type": "webhook", "url": "https://example.org/x", "github_signature": True},
        {"type": "webhook", "url": "https://example.org/x", "max_alerts": -1},
        {"type": "email", "host": "h", "from": "a@b.example", "to": ["c@d.example"], "username": "u"},
        {"type": "email", "host": "h", "from": "a@b.example", "to": ["c@d.example"], "password_env": "P"},
        {"type": "email", "host": "h", "from": "not-an-address", "to": ["c@d.example"]},
        {"type": "email", "host": "h", "from": "a@b.example", "to": []},
        {"type": "email", "host": "h", "from": "a@b.example", "to": ["c@d.example"], "tls": "ssl"},
        {"type": "email", "host": "h", "from": "a@b.example", "to": ["c@d.example"], "password": "inline"},
        {"type": "pagerduty"},
    ],
)
def test_invalid_channel_rejected(channel: dict[str, object]) -> None:
    """Missing secrets, both secret sources, bad URLs, addresses, modes and keys are rejected."""
    with pytest.raises(ValidationError):
        parse_channels({"broken": channel})


def test_resolve_secret_from_environment() -> None:
    """A secret is read from the named variable, with surrounding whitespace removed."""
    assert resolve_secret("slack", env="URL", file=None, environ={"URL": " https://x \n"}) == "https://x"


def test_resolve_secret_unset_variable() -> None:
    """An unset variable raises an error naming the channel and the variable."""
    with pytest.raises(SecretUnavailableError) as caught:
        resolve_secret("slack", env="ATLAS_SLACK_WEBHOOK_URL", file=None, environ={})
    assert str(caught.value) == "channel slack: environment variable ATLAS_SLACK_WEBHOOK_URL is not set"


def test_resolve_secret_empty_variable() -> None:
    """An empty variable is reported as empty, not as a secret of length 0."""
    with pytest.raises(SecretUnavailableError, match="is empty"):
        resolve_secret("slack", env="URL", file=None, environ={"URL": "  "})


def test_resolve_secret_from_file(tmp_path: Path) -> None:
    """A secret file's trailing newline is stripped."""
    path = tmp_path / "secret"
    path.write_text("whsec_c2VjcmV0\n", encoding="utf-8")
    assert resolve_secret("hook", env=None, file=str(path)) == "whsec_c2VjcmV0"


def test_resolve_secret_missing_file(tmp_path: Path) -> None:
    """A missing secret file names the path."""
    path = tmp_path / "absent"
    with pytest.raises(SecretUnavailableError, match=f"secret file {path} not found"):
        resolve_secret("hook", env=None, file=str(path))


def test_resolve_secret_not_configured() -> None:
    """No variable and no file means no secret."""
    assert resolve_secret("hook", env=None, file=None) is None


def test_secret_value_not_in_error(tmp_path: Path) -> None:
    """An error about a secret file never quotes its content."""
    path = tmp_path / "binary"
    path.write_bytes(b"\xffsupersecret")
    with pytest.raises(SecretUnavailableError) as caught:
        resolve_secret("hook", env=None, file=str(path))
    assert "supersecret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.slack.com/services/T1/B2/token", "https://hooks.slack.com"),
        ("http://user:pw@127.0.0.1:8080/x?key=1", "http://127.0.0.1:8080"),
        ("not a url", "<invalid url>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    """Only scheme, host and port of a URL are kept."""
    assert redact_url(url) == expected
