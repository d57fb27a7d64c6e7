"""Delivery to Alertmanager's API v2: notices become postable alerts POSTed to `/api/v2/alerts`.

The outbox sends transitions here through `dispatch.send`, and the channel's worker
re-sends open incidents every `resend_interval` (`atlas_tui.alerts.resend`).
Alertmanager keeps an alert until its `endsAt` and merges alerts with equal labels,
so one alert may be POSTed any number of times:

- a firing, repeat or test notice gets `endsAt` = now + `ENDS_AT_INTERVALS` ×
  `resend_interval` (a test notice: one interval), so an alert whose daemon stopped
  sending resolves by itself;
- a resolved notice gets `endsAt` = the time the incident resolved, which resolves
  the alert at once.

Acknowledge notices are not sent (`dispatch.should_send`), because Alertmanager has
no acknowledgement; its silences play that part.

Labels are the notice labels (series labels, rule labels, `alertname`) plus
`severity`, then the channel's `external_labels` and `host` where the notice has no
label of that name. Names Alertmanager would reject get `_` for each invalid
character. Annotations are `summary`, `runbook_url`, `value`, `note` and
`acknowledged_by`, each only when set. `generatorURL` is `atlas://rules/<rule id>`,
as in the v4 webhook body.
"""

from __future__ import annotations

import re
import socket

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from atlas_tui.alerts.channels.credentials import resolve_secret
from atlas_tui.alerts.channels.http_delivery import post_json
from atlas_tui.alerts.channels.message import Notice, NoticeGroup
from atlas_tui.alerts.channels.models import AlertmanagerChannel
from atlas_tui.alerts.channels.render import format_rfc3339, format_value
from atlas_tui.alerts.channels.result import DeliveryResult

__all__ = [
    "ALERTS_PATH",
    "ENDS_AT_INTERVALS",
    "PostableAlert",
    "alerts_endpoint",
    "build_postable_alerts",
    "send_alertmanager",
]

ALERTS_PATH = "/api/v2/alerts"
"""Path of Alertmanager's alert ingestion, after the configured base URL."""

ENDS_AT_INTERVALS = 4
"""Re-send intervals between a firing alert's send and its `endsAt`, so three lost
re-sends in a row do not resolve it."""

_INVALID_LABEL_CHARACTERS = re.compile(r"[^a-zA-Z0-9_]")


class PostableAlert(BaseModel):
    """One alert in the body of `POST /api/v2/alerts`."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    labels: dict[str, str]
    """Identity of the alert. Alertmanager merges alerts with equal labels."""
    annotations: dict[str, str]
    starts_at: str = Field(alias="startsAt")
    """RFC 3339 UTC time the incident started firing."""
    ends_at: str = Field(alias="endsAt")
    """RFC 3339 UTC time the alert ends: the resolve time, or a time ahead while it fires."""
    generator_url: str = Field(alias="generatorURL")
    """Link back to the rule that produced the alert."""


_ALERTS_ADAPTER: TypeAdapter[list[PostableAlert]] = TypeAdapter(list[PostableAlert])


async def send_alertmanager(
    channel: str,
    config: AlertmanagerChannel,
    group: NoticeGroup,
    *,
    client: httpx.AsyncClient,
    now: float,
) -> DeliveryResult:
    """POST every notice of `group` to the Alertmanager as one list of alerts.

    Raises:
        SecretUnavailableError: the bearer token's variable or file is missing.
    """
    token = resolve_secret(channel, env=config.bearer_token_env, file=config.bearer_token_file)
    alerts = build_postable_alerts(group, config, now=now, host=socket.gethostname())
    body = _ALERTS_ADAPTER.dump_json(alerts, by_alias=True)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await post_json(channel, client, alerts_endpoint(config), body, headers, timeout=config.timeout, now=now)


def alerts_endpoint(config: AlertmanagerChannel) -> str:
    """Return the full URL alerts are POSTed to."""
    return config.url.rstrip("/") + ALERTS_PATH


def build_postable_alerts(
    group: NoticeGroup, config: AlertmanagerChannel, *, now: float, host: str
) -> list[PostableAlert]:
    """Convert each notice of `group` to a postable alert, in the group's order.

    Args:
        group: The notices to send.
        config: The channel, for `resend_interval` and `external_labels`.
        now: UTC epoch seconds of this attempt; a firing alert's `endsAt` counts from it.
        host: Value of the `host` label unless the notice or `external_labels` set one.
    """
    return [_postable(notice, config, now=now, host=host) for notice in group.notices]


def _postable(notice: Notice, config: AlertmanagerChannel, *, now: float, host: str) -> PostableAlert:
    return PostableAlert(
        labels=_labels(notice, config, host),
        annotations=_annotations(notice),
        starts_at=format_rfc3339(notice.starts_at),
        ends_at=format_rfc3339(_ends_at(notice, config, now)),
        generator_url=f"atlas://rules/{notice.rule_id}",
    )


def _ends_at(notice: Notice, config: AlertmanagerChannel, now: float) -> float:
    if notice.kind == "resolved" and notice.ends_at is not None:
        # Alertmanager rejects an alert that ends before it starts.
        return max(notice.ends_at, notice.starts_at)
    intervals = 1 if notice.kind == "test" else ENDS_AT_INTERVALS
    return now + intervals * config.resend_interval


def _labels(notice: Notice, config: AlertmanagerChannel, host: str) -> dict[str, str]:
    merged = {"host": host, **config.external_labels, "severity": notice.severity, **notice.labels}
    merged.setdefault("alertname", notice.rule_id)
    labels: dict[str, str] = {}
    for name, value in merged.items():
        labels.setdefault(_label_name(name), value)
    return labels


def _annotations(notice: Notice) -> dict[str, str]:
    annotations = {key: value for key, value in notice.annotations.model_dump().items() if value}
    if notice.value is not None:
        annotations["value"] = format_value(notice.value)
    if notice.note:
        annotations["note"] = notice.note
    if notice.ack is not None:
        annotations["acknowledged_by"] = notice.ack.by
    return annotations


def _label_name(name: str) -> str:
    valid = _INVALID_LABEL_CHARACTERS.sub("_", name) or "_"
    if valid[0].isdigit():
        valid = "_" + valid
    return valid
