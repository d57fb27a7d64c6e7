"""Email delivery: a multipart text + HTML message, sent over SMTP from a worker thread.

The message is built on the event loop because that needs no I/O. The SMTP session
runs in `asyncio.to_thread`, so a hung mail server delays only this channel. The
Message-ID is derived from the notice's `notice_id`, so a retry after a timeout sends
the same Message-ID and mail clients can fold duplicates. User-derived text is HTML-escaped in
the HTML part, and header values are folded onto one line so no text from a rule or
label can inject a header.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr

from atlas_tui.alerts.channels.credentials import resolve_secret
from atlas_tui.alerts.channels.errors import SmtpDeliveryError
from atlas_tui.alerts.channels.message import Notice, NoticeGroup
from atlas_tui.alerts.channels.models import EmailChannel
from atlas_tui.alerts.channels.render import KIND_LABELS, detail_lines, headline
from atlas_tui.alerts.channels.result import DeliveryResult, DeliveryStatus, truncate_body
from atlas_tui.alerts.channels.smtp_errors import SmtpTarget
from atlas_tui.alerts.channels.smtp_session import Envelope, SmtpOutcome, deliver

__all__ = ["build_email", "send_email"]

_SUBJECT_LIMIT = 200
_TEST_FOOTER = "This is a test message sent by `atlas notify test`; no alert is firing."
_ALERT_FOOTER = "Acknowledge in the ATLAS console with `a`, or run `atlas alerts ack <fingerprint> -m <message>`."


async def send_email(channel: str, config: EmailChannel, group: NoticeGroup, *, now: float) -> DeliveryResult:
    """Deliver a group as one email to every recipient of the channel.

    Raises:
        SecretUnavailableError: the password's variable or file is missing.
    """
    password = resolve_secret(channel, env=config.password_env, file=config.password_file)
    message = build_email(group, config, now=now)
    envelope = Envelope(
        sender=config.envelope_from,
        recipients=[parseaddr(address)[1] for address in config.to],
        data=message.as_bytes(policy=SMTP),
    )
    target = SmtpTarget.from_config(channel, config)

    started = time.perf_counter()
    try:
        outcome = await asyncio.to_thread(deliver, target, password, envelope)
    except SmtpDeliveryError as err:
        return DeliveryResult(status=err.status, error_class=err.error_class, message=str(err),
                              response_body=truncate_body(err.reply), latency_ms=_elapsed_ms(started))
    return _delivered(target, outcome, _elapsed_ms(started))


def build_email(group: NoticeGroup, config: EmailChannel, *, now: float) -> EmailMessage:
    """Build the email for a group: subject from the headline, text and HTML parts."""
    message = EmailMessage(policy=SMTP)
    message["Subject"] = _one_line(headline(group))[:_SUBJECT_LIMIT]
    message["From"] = config.from_
    message["To"] = ", ".join(config.to)
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = _message_id(group.notice_id, config.envelope_from)
    message["X-Atlas-Notice-Id"] = _one_line(group.notice_id)
    message.set_content(_text_body(group))
    message.add_alternative(_html_body(group), subtype="html")
    return message


def _delivered(target: SmtpTarget, outcome: SmtpOutcome, latency_ms: float) -> DeliveryResult:
    text = f"channel {target.channel}: {target.where} accepted the message ({outcome.code})"
    if outcome.refused:
        refused = "; ".join(f"{address}: {reply}" for address, reply in outcome.refused.items())
        text += f"; refused recipients, check the channel's to addresses: {refused}"
    return DeliveryResult(status=DeliveryStatus.DELIVERED, message=text, latency_ms=latency_ms,
                          response_body=truncate_body(f"{outcome.code} {outcome.reply}"))


def _text_body(group: NoticeGroup) -> str:
    parts = [headline(group), ""]
    for notice in group.notices:
        parts.append(f"{notice.title} · {KIND_LABELS[notice.kind]} · {notice.severity}")
        parts += [f"  {name}: {value}" for name, value in _rows(notice, group)]
        parts.append("")
    parts += ["--", _TEST_FOOTER if group.is_test else _ALERT_FOOTER]
    return "\n".join(parts) + "\n"


def _html_body(group: NoticeGroup) -> str:
    escape = html.escape
    sections = [f"<h2>{escape(headline(group))}</h2>"]
    for notice in group.notices:
        rows = "".join(
            f"<tr><th align=\"left\">{escape(name)}</th><td>{_html_value(name, value)}</td></tr>"
            for name, value in _rows(notice, group)
        )
        title = f"{notice.title} · {KIND_LABELS[notice.kind]} · {notice.severity}"
        sections.append(f"<h3>{escape(title)}</h3><table>{rows}</table>")
    footer = _TEST_FOOTER if group.is_test else _ALERT_FOOTER
    sections.append(f"<p><small>{escape(footer)}</small></p>")
    return "<html><body>" + "".join(sections) + "</body></html>\n"


def _html_value(name: str, value: str) -> str:
    # Only http(s) runbook links become anchors, so a `javascript:` URL stays inert text.
    if name == "Runbook" and value.startswith(("https://", "http://")):
        return f"<a href=\"{html.escape(value, quote=True)}\">{html.escape(value)}</a>"
    return html.escape(value)


def _rows(notice: Notice, group: NoticeGroup) -> list[tuple[str, str]]:
    rows = detail_lines(notice)
    if not group.is_test:
        rows += [("Rule", notice.rule_id), ("Fingerprint", notice.fingerprint), ("Incident", notice.incident_id)]
    return rows


def _message_id(notice_id: str, sender: str) -> str:
    local = re.sub(r"[^A-Za-z0-9._-]", "-", notice_id)
    domain = sender.rpartition("@")[2] or "atlas.invalid"
    return f"<{local}@{domain}>"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 1)
