"""The Alertmanager webhook body, version 4: models and the builder from a notice group.

Emitting this shape makes ATLAS a drop-in source for receivers written for
Alertmanager; the same models validate it when another stack posts to ATLAS.
Rules of the format, as this module applies them:

- the top-level `status` is `resolved` only when every alert in the group resolved;
- `endsAt` is the zero time `0001-01-01T00:00:00Z` while an alert fires;
- `truncatedAlerts` counts alerts dropped by `max_alerts` (0 sends all);
- `commonLabels` and `commonAnnotations` are the pairs shared by every alert in the
  group, computed before truncation;
- `groupKey` is `{}:{k="v",...}` over the group labels, sorted by key.

Each alert's labels are the notice labels plus `alertname` (the rule id) and
`severity`, unless the notice labels already set them.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from atlas_tui.alerts.channels.message import Notice, NoticeGroup
from atlas_tui.alerts.channels.render import format_rfc3339

__all__ = [
    "ZERO_TIME",
    "AlertmanagerAlert",
    "AlertmanagerPayload",
    "build_alertmanager_payload",
    "group_key",
]

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's zero time, the `endsAt` of an alert that is still firing."""


class _CamelModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class AlertmanagerAlert(_CamelModel):
    """One alert in a v4 body."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str = Field(alias="startsAt")
    """RFC 3339 UTC start time."""
    ends_at: str = Field(alias="endsAt")
    """RFC 3339 UTC end time, `ZERO_TIME` while firing."""
    generator_url: str = Field(alias="generatorURL")
    """Link back to the rule (`atlas://rules/<rule id>`)."""
    fingerprint: str
    """Alert instance identity."""


class AlertmanagerPayload(_CamelModel):
    """A complete v4 webhook body."""

    version: Literal["4"] = "4"
    group_key: str = Field(alias="groupKey")
    """Key receivers dedupe on."""
    truncated_alerts: int = Field(alias="truncatedAlerts", ge=0)
    """Alerts left out because of `max_alerts`."""
    status: Literal["firing", "resolved"]
    receiver: str
    """Name of the channel that sent the body."""
    group_labels: dict[str, str] = Field(alias="groupLabels")
    common_labels: dict[str, str] = Field(alias="commonLabels")
    common_annotations: dict[str, str] = Field(alias="commonAnnotations")
    external_url: str = Field(alias="externalURL")
    """Base URL of the sending ATLAS daemon; empty when not known."""
    alerts: list[AlertmanagerAlert]


def build_alertmanager_payload(
    group: NoticeGroup, *, receiver: str, external_url: str = "", max_alerts: int = 0
) -> AlertmanagerPayload:
    """Build the v4 body for a group, keeping at most `max_alerts` alerts (0 keeps all)."""
    alerts = [_alert(notice) for notice in group.notices]
    included = alerts[:max_alerts] if max_alerts > 0 else alerts
    return AlertmanagerPayload(
        group_key=group_key(group.group_labels),
        truncated_alerts=len(alerts) - len(included),
        status=group.status,
        receiver=receiver,
        group_labels=dict(group.group_labels),
        common_labels=_common([alert.labels for alert in alerts]),
        common_annotations=_common([alert.annotations for alert in alerts]),
        external_url=external_url,
        alerts=included,
    )


def group_key(group_labels: dict[str, str]) -> str:
    """Format the group key as `{}:{k="v",...}`, values quoted as JSON strings."""
    pairs = ",".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in sorted(group_labels.items()))
    return "{}:{" + pairs + "}"


def _alert(notice: Notice) -> AlertmanagerAlert:
    labels = {"alertname": notice.rule_id, "severity": notice.severity, **notice.labels}
    annotations = {key: value for key, value in notice.annotations.model_dump().items() if value}
    if notice.note:
        annotations["note"] = notice.note
    resolved = notice.status == "resolved" and notice.ends_at is not None
    return AlertmanagerAlert(
        status=notice.status,
        labels=labels,
        annotations=annotations,
        starts_at=format_rfc3339(notice.starts_at),
        ends_at=format_rfc3339(notice.ends_at) if resolved else ZERO_TIME,
        generator_url=f"atlas://rules/{notice.rule_id}",
        fingerprint=notice.fingerprint,
    )


def _common(mappings: list[dict[str, str]]) -> dict[str, str]:
    common = dict(mappings[0])
    for mapping in mappings[1:]:
        common = {key: value for key, value in common.items() if mapping.get(key) == value}
    return common
