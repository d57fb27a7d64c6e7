"""Generic webhook delivery: the JSON body in the configured format, signed per attempt.

Two body formats:

- `standard`: `{"type": "alert.<kind>", "timestamp": …, "data": {…}}`, the event
  envelope Standard Webhooks suggests; `data.alerts` contains the notices exactly as
  `Notice` serialises them, so another ATLAS can read them back.
- `alertmanager_v4`: the Alertmanager webhook v4 body (see `alertmanager.py`).

Headers on every attempt: `webhook-id` is the group's `notice_id`, the same on every
retry; `webhook-timestamp` is `now` of this attempt; `webhook-signature` is computed
afresh when a secret is configured; `X-Hub-Signature-256` is added when
`github_signature` is on. The body itself does not depend on the attempt, so retries
send identical bytes. Without a secret the id and timestamp are still sent, unsigned.
"""

from __future__ import annotations

import json

import httpx

from atlas_tui.alerts.channels.alertmanager import build_alertmanager_payload
from atlas_tui.alerts.channels.credentials import resolve_secret
from atlas_tui.alerts.channels.http_delivery import post_json
from atlas_tui.alerts.channels.message import NoticeGroup
from atlas_tui.alerts.channels.models import WebhookChannel
from atlas_tui.alerts.channels.render import format_rfc3339
from atlas_tui.alerts.channels.result import DeliveryResult
from atlas_tui.alerts.channels.signing import github_signature, signing_key, standard_signature

__all__ = ["build_webhook_body", "send_webhook", "webhook_headers"]


async def send_webhook(
    channel: str,
    config: WebhookChannel,
    group: NoticeGroup,
    *,
    client: httpx.AsyncClient,
    now: float,
    external_url: str = "",
) -> DeliveryResult:
    """Deliver a group to a webhook, signed for this attempt.

    Raises:
        SecretUnavailableError: the secret's variable or file is missing.
        SecretInvalidError: the secret has the `whsec_` prefix but is not base64.
    """
    secret = resolve_secret(channel, env=config.secret_env, file=config.secret_file)
    body = build_webhook_body(channel, config, group, external_url=external_url)
    headers = webhook_headers(
        group.notice_id, body, secret=secret, now=now, github=config.github_signature, channel=channel
    )
    return await post_json(channel, client, config.url, body, headers, timeout=config.timeout, now=now)


def build_webhook_body(channel: str, config: WebhookChannel, group: NoticeGroup, *, external_url: str = "") -> bytes:
    """Serialise the group in the channel's format as compact UTF-8 JSON."""
    if config.format == "alertmanager_v4":
        payload = build_alertmanager_payload(
            group, receiver=channel, external_url=external_url, max_alerts=config.max_alerts
        )
        return payload.model_dump_json(by_alias=True).encode("utf-8")
    return _dumps(_standard_body(channel, config, group, external_url))


def webhook_headers(
    notice_id: str, body: bytes, *, secret: str | None, now: float, github: bool, channel: str = "webhook"
) -> dict[str, str]:
    """Build the id, timestamp and signature headers of one attempt.

    Raises:
        SecretInvalidError: the secret has the `whsec_` prefix but is not base64.
    """
    timestamp = int(now)
    headers = {"webhook-id": notice_id, "webhook-timestamp": str(timestamp)}
    if secret is None:
        return headers
    key = signing_key(secret, channel=channel)
    headers["webhook-signature"] = standard_signature(key, notice_id, timestamp, body)
    if github:
        headers["X-Hub-Signature-256"] = github_signature(secret, body)
    return headers


def _standard_body(channel: str, config: WebhookChannel, group: NoticeGroup, external_url: str) -> dict[str, object]:
    notices = group.notices
    included = notices[: config.max_alerts] if config.max_alerts > 0 else notices
    kinds = {notice.kind for notice in notices}
    event_type = f"alert.{kinds.pop()}" if len(kinds) == 1 else "alert.group"
    created = [notice.created_at for notice in notices if notice.created_at is not None]
    moment = max(created) if created else max(notice.starts_at for notice in notices)
    return {
        "type": event_type,
        "timestamp": format_rfc3339(moment),
        "data": {
            "notice_id": group.notice_id,
            "receiver": channel,
            "status": group.status,
            "group_labels": group.group_labels,
            "external_url": external_url,
            "truncated_alerts": len(notices) - len(included),
            "alerts": [notice.model_dump(mode="json") for notice in included],
        },
    }


def _dumps(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
