"""Email over SMTP against real aiosmtpd servers: TLS modes, auth, and a named error per misconfiguration."""

from __future__ import annotations

import asyncio
import email
import logging
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from atlas_tui.alerts.channels.dispatch import send
from atlas_tui.alerts.channels.email import build_email
from atlas_tui.alerts.channels.message import Annotations, as_group
from atlas_tui.alerts.channels.models import EmailChannel
from atlas_tui.alerts.channels.result import DeliveryResult, DeliveryStatus, ErrorClass
from tests.alerts.receivers import (
    SilentServer,
    SmtpRecorder,
    StallingSmtpHandler,
    make_certificate,
    make_signed_certificate,
    running_smtp,
    sample_notice,
)

NOW = 1736846000.0
PASSWORD = "correct horse battery staple"


class Certificates:
    """A CA, a server certificate it signed for 127.0.0.1, one for another name, and a self-signed one."""

    def __init__(self, directory: Path) -> None:
        self.ca = make_certificate(directory, "atlas-test-ca", "DNS:atlas-test-ca")
        self.server = make_signed_certificate(directory, self.ca, "server", "IP:127.0.0.1,DNS:localhost")
        self.other_name = make_signed_certificate(directory, self.ca, "other-name", "DNS:mail.example.test")
        self.self_signed = make_certificate(directory, "self-signed", "IP:127.0.0.1")
        self.stranger = make_certificate(directory, "stranger", "IP:127.0.0.1")


class Servers:
    """Ports of the SMTP servers shared by this module's tests."""

    plain: int
    plain_auth: int
    starttls: int
    starttls_auth: int
    implicit: int
    implicit_self_signed: int
    implicit_other_name: int


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Certificates made with the openssl command line."""
    return Certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def recorder() -> SmtpRecorder:
    """The handler every server shares; it refuses nobody@example.org."""
    return SmtpRecorder(refuse=frozenset({"nobody@example.org"}))


@pytest.fixture(scope="module")
def servers(certs: Certificates, recorder: SmtpRecorder) -> Iterator[Servers]:
    """Plain, STARTTLS and implicit-TLS servers, some requiring AUTH as user atlas."""
    users = {"atlas": PASSWORD}
    ports = Servers()
    with (
        running_smtp(recorder, "plain") as ports.plain,
        running_smtp(recorder, "plain", users=users, auth_require_tls=False) as ports.plain_auth,
        running_smtp(recorder, "starttls", certs.server) as ports.starttls,
        running_smtp(recorder, "starttls", certs.server, users=users, require_starttls=True) as ports.starttls_auth,
        running_smtp(recorder, "implicit", certs.server, users=users) as ports.implicit,
        running_smtp(recorder, "implicit", certs.self_signed) as ports.implicit_self_signed,
        running_smtp(recorder, "implicit", certs.other_name) as ports.implicit_other_name,
    ):
        yield ports


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_TEST_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("ATLAS_TEST_SMTP_WRONG", "wrong password")


def _email(port: int, tls: str, **extra: object) -> EmailChannel:
    fields: dict[str, object] = {"type": "email", "host": "127.0.0.1", "port": port, "tls": tls,
                                 "from": "ATLAS <atlas@example.org>", "to": ["oncall@example.org"], "timeout": 1}
    fields.update(extra)
    return EmailChannel.model_validate(fields)


def _auth(password_env: str = "ATLAS_TEST_SMTP_PASSWORD") -> dict[str, str]:
    return {"username": "atlas", "password_env": password_env}


async def _send(config: EmailChannel, **overrides: object) -> DeliveryResult:
    return await send("email", config, sample_notice(**overrides), now=NOW)


# --- (a)-(d): every supported setup delivers ------------------------------------------


async def test_starttls_delivers(servers: Servers, certs: Certificates, recorder: SmtpRecorder) -> None:
    """(a) STARTTLS with AUTH, trusting the server's CA through ca_file, delivers."""
    config = _email(servers.starttls_auth, "starttls", ca_file=str(certs.ca.cert), **_auth())
    result = await _send(config, notice_id="starttls-1")
    assert result.ok, result.message
    assert recorder.messages[-1].authenticated_as == "atlas"
    assert result.response_body.startswith("250")


async def test_implicit_tls_delivers(servers: Servers, certs: Certificates, recorder: SmtpRecorder) -> None:
    """(b) Implicit TLS with AUTH delivers."""
    config = _email(servers.implicit, "implicit", ca_file=str(certs.ca.cert), **_auth())
    result = await _send(config, notice_id="implicit-1")
    assert result.ok, result.message
    assert recorder.messages[-1].authenticated_as == "atlas"


async def test_plain_delivers(servers: Servers, recorder: SmtpRecorder) -> None:
    """(c) Plain SMTP without TLS or AUTH delivers."""
    result = await _send(_email(servers.plain, "none"), notice_id="plain-1")
    assert result.ok, result.message
    assert recorder.messages[-1].recipients == ["oncall@example.org"]


async def test_plain_with_auth_delivers(servers: Servers, recorder: SmtpRecorder) -> None:
    """Plain SMTP with AUTH delivers when the server allows AUTH without TLS."""
    result = await _send(_email(servers.plain_auth, "none", **_auth()), notice_id="plain-auth-1")
    assert result.ok, result.message
    assert recorder.messages[-1].authenticated_as == "atlas"


async def test_self_signed_with_ca_file_delivers(servers: Servers, certs: Certificates) -> None:
    """(d) A self-signed certificate named in ca_file is trusted."""
    config = _email(servers.implicit_self_signed, "implicit", ca_file=str(certs.self_signed.cert))
    assert (await _send(config)).ok


async def test_starttls_without_auth_delivers(servers: Servers, certs: Certificates) -> None:
    """STARTTLS without AUTH delivers."""
    assert (await _send(_email(servers.starttls, "starttls", ca_file=str(certs.ca.cert)))).ok


async def test_delivered_message_content(servers: Servers, recorder: SmtpRecorder) -> None:
    """The message has the headline as subject, text and HTML parts and a Message-ID from the notice id."""
    await _send(_email(servers.plain, "none"), notice_id="content-1")
    message = email.message_from_bytes(recorder.messages[-1].data)
    assert message["Subject"] == "[FIRING] High CPU Usage on atlas-01 (critical)"
    assert message["Message-ID"] == "<content-1@example.org>"
    assert [part.get_content_type() for part in message.walk()][1:] == ["text/plain", "text/html"]


# --- each misconfiguration has its own named error --------------------------------------

MISCONFIGURATIONS = {
    "implicit TLS against a STARTTLS port": (
        lambda s, c: _email(s.starttls, "implicit", ca_file=str(c.ca.cert)), ErrorClass.SMTP_WRONG_TLS_MODE),
    "STARTTLS against an implicit-TLS port": (
        lambda s, c: _email(s.implicit, "starttls", ca_file=str(c.ca.cert)), ErrorClass.SMTP_WRONG_TLS_MODE),
    "STARTTLS against a server without it": (
        lambda s, c: _email(s.plain, "starttls", ca_file=str(c.ca.cert)), ErrorClass.SMTP_STARTTLS_UNSUPPORTED),
    "plain against a server requiring STARTTLS": (
        lambda s, c: _email(s.starttls_auth, "none"), ErrorClass.SMTP_TLS_REQUIRED),
    "unknown CA": (
        lambda s, c: _email(s.implicit, "implicit", ca_file=str(c.stranger.cert)),
        ErrorClass.SMTP_CERTIFICATE_UNKNOWN_CA),
    "system trust store for a private CA": (
        lambda s, c: _email(s.implicit, "implicit"), ErrorClass.SMTP_CERTIFICATE_UNKNOWN_CA),
    "certificate for another host name": (
        lambda s, c: _email(s.implicit_other_name, "implicit", ca_file=str(c.ca.cert)),
        ErrorClass.SMTP_HOSTNAME_MISMATCH),
    "wrong password": (
        lambda s, c: _email(s.starttls_auth, "starttls", ca_file=str(c.ca.cert), **_auth("ATLAS_TEST_SMTP_WRONG")),
        ErrorClass.SMTP_AUTH_FAILED),
    "nothing listening": (
        lambda s, c: _email(1, "none"), ErrorClass.SMTP_CONNECT_REFUSED),
    "refused recipient": (
        lambda s, c: _email(s.plain, "none", to=["nobody@example.org"]), ErrorClass.SMTP_RECIPIENT_REFUSED),
    "missing ca_file": (
        lambda s, c: _email(s.implicit, "implicit", ca_file="/nonexistent/ca.pem"), ErrorClass.SMTP_CA_FILE_INVALID),
}


@pytest.mark.parametrize("case", list(MISCONFIGURATIONS))
async def test_misconfiguration_named(case: str, servers: Servers, certs: Certificates) -> None:
    """Each misconfiguration gives its own error class and a message naming host:port, never a bare EOF."""
    build, expected = MISCONFIGURATIONS[case]
    config = build(servers, certs)
    result = await _send(config)
    assert result.error_class is expected, result.message
    assert f"127.0.0.1:{config.smtp_port}" in result.message
    assert "EOF" not in result.message
    assert not result.ok


async def test_wrong_mode_message_says_fix(servers: Servers, certs: Certificates) -> None:
    """The wrong-TLS-mode message names the mode to set."""
    result = await _send(_email(servers.implicit, "starttls", ca_file=str(certs.ca.cert)))
    assert "set tls to implicit" in result.message


async def test_plain_auth_over_starttls_only_server(servers: Servers) -> None:
    """AUTH in plain mode against a server offering AUTH only after STARTTLS is `smtp_tls_required`."""
    result = await _send(_email(servers.starttls_auth, "none", **_auth()))
    assert result.error_class is ErrorClass.SMTP_TLS_REQUIRED


async def test_partly_refused_recipients_delivered(servers: Servers, recorder: SmtpRecorder) -> None:
    """When some recipients are accepted, the message is delivered and the refused ones are named."""
    config = _email(servers.plain, "none", to=["oncall@example.org", "nobody@example.org"])
    result = await _send(config, notice_id="partial-1")
    assert result.ok
    assert "nobody@example.org" in result.message
    assert recorder.messages[-1].recipients == ["oncall@example.org"]


async def test_misconfigurations_not_retried(servers: Servers, certs: Certificates) -> None:
    """A certificate or login problem is `misconfigured`, so the outbox stops retrying."""
    result = await _send(_email(servers.implicit, "implicit", ca_file=str(certs.stranger.cert)))
    assert result.status is DeliveryStatus.MISCONFIGURED


# --- servers that hang (BR-11) -------------------------------------------------------------


async def test_no_greeting_times_out() -> None:
    """A server that accepts TCP and never sends 220 ends at the timeout as `smtp_timeout`, retried."""
    with SilentServer() as silent:
        started = time.monotonic()
        result = await _send(_email(silent.port, "starttls", timeout=0.5))
        elapsed = time.monotonic() - started
    assert result.status is DeliveryStatus.RETRY
    assert result.error_class is ErrorClass.SMTP_TIMEOUT
    assert "no greeting" in result.message
    assert elapsed < 2.5


async def test_no_greeting_implicit_times_out() -> None:
    """In implicit mode a silent server ends at the timeout of the TLS handshake."""
    with SilentServer() as silent:
        result = await _send(_email(silent.port, "implicit", timeout=0.5))
    assert result.error_class is ErrorClass.SMTP_TIMEOUT


async def test_stall_after_data_times_out() -> None:
    """A server that never replies to the end of DATA ends at the timeout and warns of a possible duplicate."""
    handler = StallingSmtpHandler()
    with running_smtp(handler, "plain") as port:
        started = time.monotonic()
        result = await _send(_email(port, "none", timeout=0.5))
        elapsed = time.monotonic() - started
    assert handler.received.is_set()
    assert result.status is DeliveryStatus.RETRY
    assert result.error_class is ErrorClass.SMTP_TIMEOUT
    assert "DATA" in result.message
    assert elapsed < 2.0


async def test_hung_smtp_does_not_block_loop() -> None:
    """While an SMTP send hangs, the event loop keeps running other work on time."""
    lags: list[float] = []

    async def ticker() -> None:
        for _ in range(8):
            before = time.monotonic()
            await asyncio.sleep(0.05)
            lags.append(time.monotonic() - before - 0.05)

    with SilentServer() as silent:
        await asyncio.gather(_send(_email(silent.port, "none", timeout=0.6)), ticker())
    assert max(lags) < 0.2


# --- secrets ----------------------------------------------------------------------------


async def test_password_never_logged(
    servers: Servers, certs: Certificates, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SMTP password appears in no log record and no result, on success or a failed login."""
    monkeypatch.setenv("ATLAS_TEST_SMTP_WRONG", PASSWORD[::-1])
    caplog.set_level(logging.DEBUG)
    good = await _send(_email(servers.starttls_auth, "starttls", ca_file=str(certs.ca.cert), **_auth()))
    bad = await _send(_email(servers.starttls_auth, "starttls", ca_file=str(certs.ca.cert),
                             **_auth("ATLAS_TEST_SMTP_WRONG")))
    assert PASSWORD not in caplog.text
    assert PASSWORD not in good.model_dump_json()
    assert PASSWORD not in bad.model_dump_json()
    assert PASSWORD[::-1] not in caplog.text + bad.model_dump_json()


async def test_missing_password_variable(monkeypatch: pytest.MonkeyPatch, servers: Servers) -> None:
    """An unset password variable is `secret_missing`, naming the variable."""
    monkeypatch.delenv("ATLAS_TEST_SMTP_PASSWORD")
    result = await _send(_email(servers.plain_auth, "none", **_auth()))
    assert result.error_class is ErrorClass.SECRET_MISSING
    assert "ATLAS_TEST_SMTP_PASSWORD" in result.message


# --- message building ---------------------------------------------------------------------


def _parts(message: Message) -> dict[str, str]:
    return {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.walk()
            if not part.is_multipart()}


def test_html_part_escaped() -> None:
    """Label values are HTML-escaped and a javascript: runbook stays text."""
    notice = sample_notice(labels={"host": "<script>x</script>"},
                           annotations=Annotations(runbook_url="javascript:alert(1)"))
    message = build_email(as_group(notice), _email(25, "none"), now=NOW)
    html_part = _parts(email.message_from_bytes(message.as_bytes()))["text/html"]
    assert "<script>" not in html_part
    assert 'href="javascript' not in html_part


def test_subject_single_line() -> None:
    """A rule name with line breaks cannot add a header."""
    notice = sample_notice(rule_name="CPU\r\nBcc: victim@example.org")
    message = build_email(as_group(notice), _email(25, "none"), now=NOW)
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]
