"""One blocking SMTP session, run in a worker thread, that records the step it fails in.

`send_email` calls `deliver` through `asyncio.to_thread`, so the event loop never
waits on the mail server. Steps: connect → (implicit TLS handshake) → greeting →
EHLO → (STARTTLS → EHLO) → (AUTH) → MAIL FROM → RCPT TO → DATA → QUIT.

Time bounds: `timeout` applies to the TCP connect and to every read and write,
so a server that accepts and then never answers ends the session after `timeout`.
When the greeting never comes in `starttls` or `none` mode, one extra connection
(at most `PROBE_TIMEOUT` seconds) checks whether the port wants implicit TLS, which
turns a silent timeout into the named error `smtp_wrong_tls_mode`.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass, field

from atlas_tui.alerts.channels.errors import SmtpDeliveryError
from atlas_tui.alerts.channels.result import DeliveryStatus, ErrorClass
from atlas_tui.alerts.channels.smtp_errors import (
    Phase,
    SmtpTarget,
    classify_exception,
    classify_reply,
    failure,
)

__all__ = ["PROBE_TIMEOUT", "Envelope", "SmtpOutcome", "deliver", "speaks_tls"]

PROBE_TIMEOUT = 3.0
"""Maximum seconds of the implicit-TLS probe after a missing greeting."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The envelope addresses and message bytes (CRLF line endings) of one delivery."""

    sender: str
    recipients: list[str]
    data: bytes


@dataclass(slots=True)
class SmtpOutcome:
    """A session that delivered to at least one recipient."""

    code: int
    """The reply code to the end of DATA (250)."""
    reply: str
    """The reply text to the end of DATA, often with the server's queue id."""
    refused: dict[str, str] = field(default_factory=dict)
    """Recipients the server refused, with its reply, when others were accepted."""


def deliver(target: SmtpTarget, password: str | None, envelope: Envelope) -> SmtpOutcome:
    """Run one SMTP session; blocking, so call it in a worker thread.

    Raises:
        SmtpDeliveryError: any failure, named by `smtp_errors`.
    """
    context = _tls_context(target)
    tracker = _Tracker()
    try:
        return _session(target, context, password, envelope, tracker)
    except SmtpDeliveryError:
        raise
    except (smtplib.SMTPException, OSError) as err:
        probe = _probe_after_missing_greeting(target, tracker.phase, err)
        raise classify_exception(err, tracker.phase, target, speaks_tls=probe) from err


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Return True when the server on host:port completes a TLS handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Only the protocol is being detected and nothing is sent after the handshake,
    # so the certificate is not checked here; the real session checks it.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout) as raw, context.wrap_socket(raw, server_hostname=host):
            return True
    except (OSError, ValueError):
        return False


@dataclass(slots=True)
class _Tracker:
    phase: Phase = "connect"


class _PhasedSMTP(smtplib.SMTP):
    """An `smtplib.SMTP` that records its step and can do implicit TLS itself."""

    def __init__(self, target: SmtpTarget, tracker: _Tracker, implicit: ssl.SSLContext | None) -> None:
        self._tracker = tracker
        self._implicit = implicit
        # A local_hostname avoids smtplib's reverse DNS lookup, which can hang for seconds.
        super().__init__(target.host, target.port, local_hostname=socket.gethostname(), timeout=target.timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        self._tracker.phase = "connect"
        sock = socket.create_connection((host, port), timeout, self.source_address)
        if self._implicit is not None:
            self._tracker.phase = "tls_handshake"
            try:
                sock = self._implicit.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        self._tracker.phase = "greeting"
        return sock


def _session(
    target: SmtpTarget, context: ssl.SSLContext | None, password: str | None, envelope: Envelope, tracker: _Tracker
) -> SmtpOutcome:
    client = _PhasedSMTP(target, tracker, context if target.tls == "implicit" else None)
    try:
        tracker.phase = "ehlo"
        client.ehlo_or_helo_if_needed()
        if target.tls == "starttls":
            _start_tls(client, context, target, tracker)
        if target.username:
            _login(client, target, password or "", tracker)
        outcome = _transfer(client, envelope, target, tracker)
    except BaseException:
        client.close()
        raise
    _quit(client)
    return outcome


def _start_tls(client: smtplib.SMTP, context: ssl.SSLContext | None, target: SmtpTarget, tracker: _Tracker) -> None:
    if not client.has_extn("starttls"):
        raise failure(target, ErrorClass.SMTP_STARTTLS_UNSUPPORTED, DeliveryStatus.MISCONFIGURED,
                      f"{target.where} does not offer STARTTLS; use its TLS port with tls implicit "
                      "(usually 465), or set tls to none only on a trusted network")
    tracker.phase = "starttls"
    client.starttls(context=context)
    tracker.phase = "ehlo"
    client.ehlo()


def _login(client: smtplib.SMTP, target: SmtpTarget, password: str, tracker: _Tracker) -> None:
    tracker.phase = "auth"
    if not client.has_extn("auth"):
        if target.tls == "none" and client.has_extn("starttls"):
            raise failure(target, ErrorClass.SMTP_TLS_REQUIRED, DeliveryStatus.MISCONFIGURED,
                          f"{target.where} offers AUTH only after STARTTLS; set tls to starttls")
        raise failure(target, ErrorClass.SMTP_AUTH_UNSUPPORTED, DeliveryStatus.MISCONFIGURED,
                      f"{target.where} does not offer AUTH; remove username or use the server's submission port")
    client.login(target.username or "", password)


def _transfer(client: smtplib.SMTP, envelope: Envelope, target: SmtpTarget, tracker: _Tracker) -> SmtpOutcome:
    tracker.phase = "mail"
    code, reply = client.mail(envelope.sender)
    if code != 250:
        raise classify_reply("mail", code, _decode(reply), target)

    tracker.phase = "rcpt"
    refused: dict[str, tuple[int, str]] = {}
    for recipient in envelope.recipients:
        code, reply = client.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, _decode(reply))
    if len(refused) == len(envelope.recipients):
        first_code, first_reply = next(iter(refused.values()))
        raise classify_reply("rcpt", first_code, f"{first_reply} (all recipients: {', '.join(refused)})", target)

    tracker.phase = "data"
    code, reply = client.data(envelope.data)
    if code != 250:
        raise classify_reply("data", code, _decode(reply), target)
    refused_text = {address: f"{code} {text}" for address, (code, text) in refused.items()}
    return SmtpOutcome(code=code, reply=_decode(reply), refused=refused_text)


def _quit(client: smtplib.SMTP) -> None:
    # The message is already accepted; a failing QUIT must not turn that into an error.
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _tls_context(target: SmtpTarget) -> ssl.SSLContext | None:
    if target.tls == "none":
        return None
    try:
        return ssl.create_default_context(cafile=target.ca_file)
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise failure(target, ErrorClass.SMTP_CA_FILE_INVALID, DeliveryStatus.MISCONFIGURED,
                      f"cannot load ca_file {target.ca_file} for {target.where} ({reason}); "
                      "point ca_file at a PEM certificate") from err


def _probe_after_missing_greeting(target: SmtpTarget, phase: Phase, err: BaseException) -> bool | None:
    if phase != "greeting" or target.tls == "implicit":
        return None
    if not isinstance(err, (smtplib.SMTPServerDisconnected, OSError)):
        return None
    return speaks_tls(target.host, target.port, min(target.timeout, PROBE_TIMEOUT))


def _decode(reply: bytes | str) -> str:
    text = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())
