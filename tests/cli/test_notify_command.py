"""`atlas notify test CHANNEL` against real receivers on 127.0.0.1: HTTP and aiosmtpd."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from tests.alerts.receivers import (
    Certificate,
    HttpReceiver,
    Reply,
    SmtpRecorder,
    make_certificate,
    running_smtp,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the caller's ATLAS_* variables and XDG config so only the test's files count."""
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    monkeypatch.delenv("ATLAS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """An HTTP receiver returning 200 `ok`."""
    with HttpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, trusted through `ca_file`."""
    return make_certificate(tmp_path_factory.mktemp("certs"), "notify-test", "IP:127.0.0.1")


def _config(tmp_path: Path, channels: dict[str, object]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"channels": channels}), encoding="utf-8")
    return str(path)


def _slack_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> str:
    monkeypatch.setenv("ATLAS_TEST_SLACK_URL", url)
    return _config(tmp_path, {"slack": {"type": "slack", "webhook_url_env": "ATLAS_TEST_SLACK_URL"}})


def _email_channel(port: int, tls: str, ca_file: Path | None = None) -> dict[str, object]:
    channel: dict[str, object] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "tls": tls,
        "from": "atlas@example.org",
        "to": ["oncall@example.org"],
        "timeout": "5s",
    }
    if ca_file is not None:
        channel["ca_file"] = str(ca_file)
    return channel


def test_slack_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Slack channel that returns 200 exits 0 and prints latency and response."""
    config = _slack_config(tmp_path, monkeypatch, receiver.url)

    code = main(["notify", "test", "slack", "--config", config])

    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert out.startswith("slack: delivered in ")
    assert " ms\n" in out
    assert "response: ok" in out


def test_slack_message_labelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: HttpReceiver
) -> None:
    """The receiver gets exactly one message, labelled as a test."""
    config = _slack_config(tmp_path, monkeypatch, receiver.url)

    main(["notify", "test", "slack", "--config", config])

    assert len(receiver.requests) == 1
    assert json.loads(receiver.requests[0].body)["text"].startswith("[TEST] ATLAS notification test from ")


def test_webhook_rejected(
    tmp_path: Path, receiver: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A webhook returning 404 exits 1 and prints the named error and the response body."""
    receiver.script(Reply(status=404, body=b"no such hook"))
    config = _config(tmp_path, {"ops-webhook": {"type": "webhook", "url": receiver.url}})

    code = main(["notify", "test", "ops-webhook", "--config", config])

    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert "ops-webhook: misconfigured: http_not_found" in err
    assert "HTTP status: 404" in err
    assert "response: no such hook" in err


def test_refused_port_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening on the port exits 1 with the connect_refused error class."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _config(tmp_path, {"hook": {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook"}})

    code = main(["notify", "test", "hook", "--config", config])

    assert code == EXIT_FAILURE
    assert "connect_refused" in capsys.readouterr().err


def test_missing_secret_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A Slack channel whose URL variable is unset exits 1 naming secret_missing and the variable."""
    monkeypatch.delenv("ATLAS_TEST_SLACK_URL", raising=False)
    config = _config(tmp_path, {"slack": {"type": "slack", "webhook_url_env": "ATLAS_TEST_SLACK_URL"}})

    code = main(["notify", "test", "slack", "--config", config])

    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert "secret_missing" in err
    assert "ATLAS_TEST_SLACK_URL" in err


@pytest.mark.parametrize("tls", ["none", "starttls", "implicit"])
def test_email_modes_delivered(
    tls: str, tmp_path: Path, certificate: Certificate, capsys: pytest.CaptureFixture[str]
) -> None:
    """Email is delivered over plain SMTP, STARTTLS and implicit TLS with a self-signed `ca_file`."""
    recorder = SmtpRecorder()
    mode = {"none": "plain", "starttls": "starttls", "implicit": "implicit"}[tls]
    server_cert = None if tls == "none" else certificate
    with running_smtp(recorder, mode, server_cert) as port:  # type: ignore[arg-type]
        ca_file = None if tls == "none" else certificate.cert
        config = _config(tmp_path, {"email": _email_channel(port, tls, ca_file)})
        code = main(["notify", "test", "email", "--config", config])

    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert out.startswith("email: delivered in ")
    assert "response: 250 2.0.0 OK queued as atlas-test-1" in out
    assert email.message_from_bytes(recorder.messages[0].data)["Subject"].startswith("[TEST] ")


def test_email_unknown_ca(tmp_path: Path, certificate: Certificate, capsys: pytest.CaptureFixture[str]) -> None:
    """STARTTLS with a certificate the system store does not trust exits 1 with a named CA error."""
    with running_smtp(SmtpRecorder(), "starttls", certificate) as port:
        config = _config(tmp_path, {"email": _email_channel(port, "starttls")})
        code = main(["notify", "test", "email", "--config", config])

    assert code == EXIT_FAILURE
    assert "email: misconfigured: smtp_certificate_unknown_ca" in capsys.readouterr().err


def test_unknown_channel_lists_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown channel name exits 2 and lists the configured channels."""
    config = _config(
        tmp_path,
        {
            "slack": {"type": "slack", "webhook_url_env": "ATLAS_TEST_SLACK_URL"},
            "ops-webhook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
        },
    )

    code = main(["notify", "test", "pager", "--config", config])

    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert 'channel "pager" is not configured; configured channels: ops-webhook, slack' in err


def test_no_channels_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a channels section, exit 2 with a hint to add one."""
    path = tmp_path / "config.json"
    path.write_text("{}", encoding="utf-8")

    code = main(["notify", "test", "email", "--config", str(path)])

    assert code == EXIT_USAGE
    assert 'has no "channels" section' in capsys.readouterr().err
