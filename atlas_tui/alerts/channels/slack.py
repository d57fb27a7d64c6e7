"""Slack incoming-webhook messages: payload within Slack's limits, and delivery.

A message has `text` (the notification and fallback line) and `blocks`: a header,
one section per alert and a context line. Slack's limits, which this module enforces:

- a section's text is at most 3000 characters, because Slack returns HTTP 400 above
  that. Longer text is cut and marked `…(+N)` with N the number of characters removed;
- a header's text is at most 150 characters;
- at most 50 blocks per message; a group of more than 20 alerts is sent as one
  summary section listing the first 20 and a line saying how many more there are.

Every string that comes from rules, labels or operators is escaped (`&`, `<`, `>`),
because Slack reads `<!channel>` as a mention of everyone. The webhook URL is a
secret and is read at send time; only its scheme and host are ever shown.
"""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import BaseModel, Field

from atlas_tui.alerts.channels.credentials import resolve_secret
from atlas_tui.alerts.channels.http_delivery import post_json
from atlas_tui.alerts.channels.message import Notice, NoticeGroup
from atlas_tui.alerts.channels.models import SlackChannel
from atlas_tui.alerts.channels.render import (
    KIND_LABELS,
    detail_lines,
    format_time,
    format_value,
    headline,
    instance_of,
    top_severity,
)
from atlas_tui.alerts.channels.result import DeliveryResult, DeliveryStatus, ErrorClass

__all__ = [
    "HEADER_TEXT_LIMIT",
    "MAX_BLOCKS",
    "MAX_DETAILED_ALERTS",
    "SECTION_TEXT_LIMIT",
    "SlackMessage",
    "build_slack_message",
    "escape_mrkdwn",
    "send_slack",
    "truncate_text",
]

SECTION_TEXT_LIMIT = 3000
"""Slack's maximum length of a section's text."""
HEADER_TEXT_LIMIT = 150
"""Slack's maximum length of a header block's text."""
MAX_BLOCKS = 50
"""Slack's maximum number of blocks in one message."""
MAX_DETAILED_ALERTS = 20
"""Groups up to this size get one section per alert; larger ones get a summary."""

_SEVERITY_ICONS = {"info": "🔵", "warning": "🟠", "error": "🔴", "critical": "🔴"}
_KIND_ICONS = {"resolved": "✅", "acknowledge": "👀", "test": "🧪"}


class TextObject(BaseModel):
    """A Slack text object."""

    type: Literal["plain_text", "mrkdwn"]
    """`plain_text` for headers, `mrkdwn` for formatted text."""
    text: str
    """The text, already escaped and cut to the block's limit."""


class HeaderBlock(BaseModel):
    """A Slack header block."""

    type: Literal["header"] = "header"
    text: TextObject


class SectionBlock(BaseModel):
    """A Slack section block."""

    type: Literal["section"] = "section"
    text: TextObject


class ContextBlock(BaseModel):
    """A Slack context block: a small grey line."""

    type: Literal["context"] = "context"
    elements: list[TextObject] = Field(max_length=10)


class SlackMessage(BaseModel):
    """The JSON body POSTed to a Slack incoming webhook."""

    text: str
    """Notification and fallback text; Slack shows it where blocks cannot be shown."""
    blocks: list[HeaderBlock | SectionBlock | ContextBlock] = Field(max_length=MAX_BLOCKS)
    """Header, sections and context, in display order."""


def build_slack_message(group: NoticeGroup) -> SlackMessage:
    """Build the Slack message for a group of notices, within Slack's limits."""
    blocks: list[HeaderBlock | SectionBlock | ContextBlock] = [_header(group)]
    if len(group.notices) <= MAX_DETAILED_ALERTS:
        blocks += [_section(_alert_text(notice, titled=len(group.notices) > 1)) for notice in group.notices]
    else:
        blocks.append(_section(_summary_text(group.notices[:MAX_DETAILED_ALERTS])))
        hidden = len(group.notices) - MAX_DETAILED_ALERTS
        blocks.append(_context(f"{hidden} more alerts in this group are not listed"))
    blocks.append(_context(_footer(group)))
    return SlackMessage(text=truncate_text(escape_mrkdwn(headline(group)), SECTION_TEXT_LIMIT), blocks=blocks)


async def send_slack(
    channel: str, config: SlackChannel, group: NoticeGroup, *, client: httpx.AsyncClient, now: float
) -> DeliveryResult:
    """Deliver a group to a Slack incoming webhook.

    Raises:
        SecretUnavailableError: the webhook URL's variable or file is missing.
    """
    url = resolve_secret(channel, env=config.webhook_url_env, file=config.webhook_url_file)
    assert url is not None  # the model requires webhook_url_env or webhook_url_file
    if not url.startswith(("https://", "http://")):
        source = config.webhook_url_env or config.webhook_url_file
        return DeliveryResult(status=DeliveryStatus.MISCONFIGURED, error_class=ErrorClass.INVALID_URL,
                              message=f"channel {channel}: the Slack webhook URL in {source} is not an http(s) URL")
    body = build_slack_message(group).model_dump_json().encode("utf-8")
    return await post_json(channel, client, url, body, {}, timeout=config.timeout, now=now)


def escape_mrkdwn(text: str) -> str:
    """Escape `&`, `<` and `>` as Slack requires for text it should not interpret."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate_text(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, ending it with `…(+N)` for N characters removed.

    The cut never splits an escape such as `&amp;`.
    """
    if len(text) <= limit:
        return text
    keep = limit - len(f"…(+{len(text)})")
    entity = text.rfind("&", max(0, keep - 4), keep)
    if entity != -1 and ";" not in text[entity:keep]:
        keep = entity
    return f"{text[:keep]}…(+{len(text) - keep})"


def _header(group: NoticeGroup) -> HeaderBlock:
    first = group.notices[0]
    icon = _KIND_ICONS.get(first.kind, _SEVERITY_ICONS[top_severity(group)])
    if group.is_test:
        text = f"{icon} TEST · {first.title}"
    else:
        kinds = " ".join(sorted({KIND_LABELS[notice.kind] for notice in group.notices}))
        text = f"{icon} {kinds} · {top_severity(group).upper()} · {first.title}"
    escaped = truncate_text(escape_mrkdwn(text), HEADER_TEXT_LIMIT)
    return HeaderBlock(text=TextObject(type="plain_text", text=escaped))


def _alert_text(notice: Notice, *, titled: bool) -> str:
    lines = []
    if titled:
        lines.append(f"*{escape_mrkdwn(notice.title)}* · {KIND_LABELS[notice.kind]}")
    for name, value in detail_lines(notice):
        if name == "Runbook":
            lines.append(f"*Runbook:* <{_link_target(value)}|open the runbook>")
        else:
            lines.append(f"*{name}:* {escape_mrkdwn(value)}")
    return "\n".join(lines)


def _summary_text(notices: list[Notice]) -> str:
    lines = []
    for notice in notices:
        parts = [f"*{escape_mrkdwn(notice.title)}*", KIND_LABELS[notice.kind]]
        instance = instance_of(notice)
        if instance:
            parts.append(escape_mrkdwn(instance))
        if notice.value is not None:
            parts.append(format_value(notice.value))
        parts.append(f"since {format_time(notice.starts_at)}")
        lines.append("• " + " · ".join(parts))
    return "\n".join(lines)


def _footer(group: NoticeGroup) -> str:
    if group.is_test:
        return "Test message from `atlas notify test`; no alert is firing."
    first = group.notices[0]
    rules = sorted({notice.rule_id for notice in group.notices})
    rule_text = escape_mrkdwn(", ".join(rules))
    fingerprint = f" · fp `{escape_mrkdwn(first.fingerprint[:8])}…`" if len(group.notices) == 1 else ""
    return f"rule `{rule_text}`{fingerprint} · ack in the ATLAS console with `a`"


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=TextObject(type="mrkdwn", text=truncate_text(text, SECTION_TEXT_LIMIT)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[TextObject(type="mrkdwn", text=truncate_text(text, SECTION_TEXT_LIMIT))])


def _link_target(url: str) -> str:
    # `|` ends the link target in Slack's <url|label> syntax, so it is percent-encoded.
    return escape_mrkdwn(url).replace("|", "%7C")
