"""Named SMTP failures: map what smtplib, ssl and the socket raise to an error class and a fix.

The SMTP session (`smtp_session.py`) runs in a worker thread and records which step
it is in. On failure it calls `classify_exception` or `classify_reply` and raises the
`SmtpDeliveryError` they return. Every message names host:port, the step, and what
to change, so a wrong port or TLS mode never surfaces as a bare "EOF":

| situation                                        | error class                   | status        |
|--------------------------------------------------|-------------------------------|---------------|
| nothing listens on the port                      | `smtp_connect_refused`        | retry         |
| no greeting / no reply within `timeout`          | `smtp_timeout`                | retry         |
| TLS client against a plain port, or plain client against an implicit-TLS port | `smtp_wrong_tls_mode` | misconfigured |
| `starttls` but the server does not offer it     | `smtp_starttls_unsupported`   | misconfigured |
| server wants STARTTLS before AUTH or MAIL        | `smtp_tls_required`           | misconfigured |
| certificate from a CA not trusted / not in ca_file | `smtp_certificate_unknown_ca` | misconfigured |
| certificate for another host name                | `smtp_hostname_mismatch`      | misconfigured |
| wrong user or password                           | `smtp_auth_failed`            | misconfigured |
| every recipient refused                          | `smtp_recipient_refused`      | misconfigured |
| any 4xx reply                                    | `smtp_temporary_failure`      | retry         |
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import Literal

from atlas_tui.alerts.channels.errors import SmtpDeliveryError
from atlas_tui.alerts.channels.models import EmailChannel, TlsMode
from atlas_tui.alerts.channels.result import DeliveryStatus, ErrorClass

__all__ = ["Phase", "SmtpTarget", "classify_exception", "classify_reply", "failure"]

Phase = Literal["connect", "tls_handshake", "greeting", "ehlo", "starttls", "auth", "mail", "rcpt", "data"]
"""The step of an SMTP session, in order."""

_WAITING_FOR: dict[Phase, str] = {
    "connect": "the TCP connection",
    "tls_handshake": "the TLS handshake",
    "greeting": "the server's greeting (220)",
    "ehlo": "the reply to EHLO",
    "starttls": "the STARTTLS handshake",
    "auth": "the reply to AUTH",
    "mail": "the reply to MAIL FROM",
    "rcpt": "the reply to RCPT TO",
    "data": "the reply to DATA",
}
_HOSTNAME_MISMATCH_CODES = frozenset({62, 63, 64})
_UNKNOWN_CA_CODES = frozenset({2, 18, 19, 20, 21})
_EXPIRED_CODES = frozenset({9, 10})
# OpenSSL reasons seen when the peer replies to a ClientHello with plain SMTP text.
_PLAINTEXT_PEER_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
)


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Channel settings that failure messages name."""

    channel: str
    host: str
    port: int
    tls: TlsMode
    timeout: float
    ca_file: str | None
    username: str | None
    password_source: str | None
    """Name of the variable or file holding the password, never the password."""

    @classmethod
    def from_config(cls, channel: str, config: EmailChannel) -> SmtpTarget:
        """Take the fields from a channel's config."""
        return cls(channel=channel, host=config.host, port=config.smtp_port, tls=config.tls,
                   timeout=config.timeout, ca_file=config.ca_file, username=config.username,
                   password_source=config.password_env or config.password_file)

    @property
    def where(self) -> str:
        """`host:port` for messages."""
        return f"{self.host}:{self.port}"


def failure(target: SmtpTarget, error_class: ErrorClass, status: DeliveryStatus, text: str,
            reply: str = "") -> SmtpDeliveryError:
    """Build the error for `target`, prefixing the message with the channel name."""
    return SmtpDeliveryError(error_class, status, f"channel {target.channel}: {text}", reply)


def classify_exception(
    err: BaseException, phase: Phase, target: SmtpTarget, *, speaks_tls: bool | None = None
) -> SmtpDeliveryError:
    """Name a failure raised by smtplib, ssl or the socket during `phase`.

    Args:
        err: The exception.
        phase: The step the session was in.
        target: The channel's SMTP settings.
        speaks_tls: Result of a TLS probe of the port after a greeting failure in
            `starttls`/`none` mode; True means the port wants implicit TLS.
    """
    if isinstance(err, ssl.SSLCertVerificationError):
        return _certificate_error(err, target)
    if isinstance(err, ssl.SSLError):
        return _tls_error(err, phase, target)
    if isinstance(err, smtplib.SMTPAuthenticationError):
        return _auth_failed(err, target)
    if isinstance(err, smtplib.SMTPNotSupportedError) or _no_auth_method(err):
        return failure(target, ErrorClass.SMTP_AUTH_UNSUPPORTED, DeliveryStatus.MISCONFIGURED,
                       f"{target.where} offers no AUTH method smtplib can use; remove username or use another port")
    if isinstance(err, smtplib.SMTPServerDisconnected):
        return _lost_connection(err, phase, target, speaks_tls)
    if isinstance(err, smtplib.SMTPResponseException):
        return classify_reply(phase, err.smtp_code, _text(err.smtp_error), target)
    if isinstance(err, smtplib.SMTPException):
        return failure(target, ErrorClass.SMTP_PROTOCOL_ERROR, DeliveryStatus.FAILED,
                       f"{target.where} broke the SMTP protocol during {_WAITING_FOR[phase]}: {err}")
    if isinstance(err, OSError):
        return _socket_error(err, phase, target, speaks_tls)
    return failure(target, ErrorClass.SMTP_PROTOCOL_ERROR, DeliveryStatus.FAILED,
                   f"unexpected {type(err).__name__} during {_WAITING_FOR[phase]} with {target.where}")


def classify_reply(phase: Phase, code: int, text: str, target: SmtpTarget) -> SmtpDeliveryError:
    """Name a reply code that ended the session during `phase`."""
    reply = f"{code} {text}".strip()
    where = target.where
    if code == 530 and "starttls" in text.lower():
        return failure(target, ErrorClass.SMTP_TLS_REQUIRED, DeliveryStatus.MISCONFIGURED,
                       f"{where} requires STARTTLS first ({reply}); set tls to starttls", reply)
    if code == 530:
        return failure(target, ErrorClass.SMTP_AUTH_REQUIRED, DeliveryStatus.MISCONFIGURED,
                       f"{where} requires authentication ({reply}); set username and password_env", reply)
    if 400 <= code < 500:
        return failure(target, ErrorClass.SMTP_TEMPORARY_FAILURE, DeliveryStatus.RETRY,
                       f"{where} temporarily refused at {_WAITING_FOR[phase]} ({reply}); will retry", reply)
    error_class, status, fix = _permanent_reply(phase)
    return failure(target, error_class, status, f"{where} refused at {_WAITING_FOR[phase]} ({reply}); {fix}", reply)


def _permanent_reply(phase: Phase) -> tuple[ErrorClass, DeliveryStatus, str]:
    if phase == "greeting":
        return ErrorClass.SMTP_GREETING_REJECTED, DeliveryStatus.MISCONFIGURED, "check host and port"
    if phase == "starttls":
        return ErrorClass.SMTP_STARTTLS_UNSUPPORTED, DeliveryStatus.MISCONFIGURED, "set tls to implicit or none"
    if phase == "mail":
        return ErrorClass.SMTP_SENDER_REFUSED, DeliveryStatus.MISCONFIGURED, "check the channel's from address"
    if phase == "rcpt":
        return ErrorClass.SMTP_RECIPIENT_REFUSED, DeliveryStatus.MISCONFIGURED, "check the channel's to addresses"
    if phase == "data":
        return ErrorClass.SMTP_MESSAGE_REJECTED, DeliveryStatus.FAILED, "the server will not accept this message"
    return ErrorClass.SMTP_PROTOCOL_ERROR, DeliveryStatus.FAILED, "check the server's log"


def _certificate_error(err: ssl.SSLCertVerificationError, target: SmtpTarget) -> SmtpDeliveryError:
    detail = err.verify_message or str(err)
    if err.verify_code in _HOSTNAME_MISMATCH_CODES:
        return failure(target, ErrorClass.SMTP_HOSTNAME_MISMATCH, DeliveryStatus.MISCONFIGURED,
                       f"the certificate of {target.where} is not valid for {target.host!r} ({detail}); "
                       "set host to a name the certificate lists")
    if err.verify_code in _UNKNOWN_CA_CODES:
        trust = f"the CA in ca_file {target.ca_file}" if target.ca_file else "the system's trusted CAs"
        return failure(target, ErrorClass.SMTP_CERTIFICATE_UNKNOWN_CA, DeliveryStatus.MISCONFIGURED,
                       f"the certificate of {target.where} is not signed by {trust} ({detail}); "
                       "set ca_file to the PEM file of the server's CA or self-signed certificate")
    if err.verify_code in _EXPIRED_CODES:
        return failure(target, ErrorClass.SMTP_CERTIFICATE_EXPIRED, DeliveryStatus.MISCONFIGURED,
                       f"the certificate of {target.where} is outside its validity period ({detail}); renew it")
    return failure(target, ErrorClass.SMTP_CERTIFICATE_INVALID, DeliveryStatus.MISCONFIGURED,
                   f"the certificate of {target.where} failed verification ({detail})")


def _tls_error(err: ssl.SSLError, phase: Phase, target: SmtpTarget) -> SmtpDeliveryError:
    if phase == "tls_handshake" and err.reason in _PLAINTEXT_PEER_REASONS:
        return failure(target, ErrorClass.SMTP_WRONG_TLS_MODE, DeliveryStatus.MISCONFIGURED,
                       f"{target.where} answered the TLS handshake in plain text, so it does not use implicit "
                       "TLS; set tls to starttls (usually port 587) or none (port 25)")
    hint = "set tls to starttls for this port" if phase == "tls_handshake" else "check the server's TLS settings"
    return failure(target, ErrorClass.SMTP_TLS_HANDSHAKE_FAILED, DeliveryStatus.MISCONFIGURED,
                   f"TLS handshake with {target.where} failed ({err.reason or err}); {hint}")


def _auth_failed(err: smtplib.SMTPAuthenticationError, target: SmtpTarget) -> SmtpDeliveryError:
    reply = f"{err.smtp_code} {_text(err.smtp_error)}"
    return failure(target, ErrorClass.SMTP_AUTH_FAILED, DeliveryStatus.MISCONFIGURED,
                   f"{target.where} rejected the login of user {target.username!r} ({reply}); "
                   f"check username and the password in {target.password_source}", reply)


def _lost_connection(
    err: smtplib.SMTPServerDisconnected, phase: Phase, target: SmtpTarget, speaks_tls: bool | None
) -> SmtpDeliveryError:
    # smtplib turns a socket error while reading a reply into SMTPServerDisconnected.
    cause = err.__context__
    if isinstance(cause, ssl.SSLError):
        return _tls_error(cause, phase, target)
    if isinstance(cause, OSError):
        return _socket_error(cause, phase, target, speaks_tls)
    if speaks_tls:
        return _expects_implicit_tls(target)
    return failure(target, ErrorClass.SMTP_DISCONNECTED, DeliveryStatus.RETRY,
                   f"{target.where} closed the connection while ATLAS waited for {_WAITING_FOR[phase]}; "
                   "check port and tls, will retry")


def _socket_error(err: OSError, phase: Phase, target: SmtpTarget, speaks_tls: bool | None) -> SmtpDeliveryError:
    where = target.where
    if speaks_tls:
        return _expects_implicit_tls(target)
    if isinstance(err, ConnectionRefusedError):
        return failure(target, ErrorClass.SMTP_CONNECT_REFUSED, DeliveryStatus.RETRY,
                       f"connection refused by {where}; check host and port (587 starttls, 465 implicit, "
                       "25 none) and that the mail server runs")
    if isinstance(err, socket.gaierror):
        return failure(target, ErrorClass.SMTP_HOST_NOT_FOUND, DeliveryStatus.RETRY,
                       f"cannot resolve host {target.host!r} ({err.strerror}); check host")
    if isinstance(err, TimeoutError):
        return _timed_out(phase, target)
    if phase == "connect":
        return failure(target, ErrorClass.SMTP_CONNECT_FAILED, DeliveryStatus.RETRY,
                       f"cannot connect to {where} ({err.strerror or err}); will retry")
    return failure(target, ErrorClass.SMTP_DISCONNECTED, DeliveryStatus.RETRY,
                   f"connection to {where} lost while ATLAS waited for {_WAITING_FOR[phase]} "
                   f"({err.strerror or err}); will retry")


def _timed_out(phase: Phase, target: SmtpTarget) -> SmtpDeliveryError:
    seconds = f"{target.timeout:g} s"
    if phase == "connect":
        return failure(target, ErrorClass.SMTP_CONNECT_TIMEOUT, DeliveryStatus.RETRY,
                       f"connecting to {target.where} timed out after {seconds}; check host, port and firewall")
    if phase == "greeting":
        text = (f"{target.where} accepted the connection but sent no greeting within {seconds}; "
                "check that the port is an SMTP port")
    elif phase == "tls_handshake":
        text = (f"{target.where} did not answer the TLS handshake within {seconds}; "
                "if the port speaks plain SMTP, set tls to starttls")
    else:
        text = f"{target.where} sent no reply within {seconds} while ATLAS waited for {_WAITING_FOR[phase]}"
        if phase == "data":
            text += "; the message may have been delivered, so the retry can duplicate it"
    return failure(target, ErrorClass.SMTP_TIMEOUT, DeliveryStatus.RETRY, text)


def _expects_implicit_tls(target: SmtpTarget) -> SmtpDeliveryError:
    return failure(target, ErrorClass.SMTP_WRONG_TLS_MODE, DeliveryStatus.MISCONFIGURED,
                   f"{target.where} expects TLS from the first byte (implicit TLS) but tls is "
                   f"{target.tls}; set tls to implicit (usually port 465)")


def _no_auth_method(err: BaseException) -> bool:
    return type(err) is smtplib.SMTPException and "authentication method" in str(err)


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())
