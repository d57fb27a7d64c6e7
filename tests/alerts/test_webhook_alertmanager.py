"""The `alertmanager_v4` webhook body: shape, statuses, times and truncation."""

from __future__ import annotations

import json

from atlas_tui.alerts.channels.alertmanager import ZERO_TIME, AlertmanagerPayload, group_key
from atlas_tui.alerts.channels.message import Annotations, NoticeGroup
from atlas_tui.alerts.channels.models import WebhookChannel
from atlas_tui.alerts.channels.webhook import build_webhook_body
from tests.alerts.receivers import sample_notice

TOP_LEVEL_KEYS = {
    "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
    "commonLabels", "commonAnnotations", "externalURL", "alerts",
}
ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}


def _config(max_alerts: int = 0) -> WebhookChannel:
    return WebhookChannel.model_validate(
        {"type": "webhook", "url": "http://127.0.0.1/hook", "format": "alertmanager_v4", "max_alerts": max_alerts}
    )


def _body(group: NoticeGroup, max_alerts: int = 0) -> dict[str, object]:
    raw = build_webhook_body("ops-webhook", _config(max_alerts), group, external_url="http://atlas-01:9777")
    return json.loads(raw)


def _group(*notices: object) -> NoticeGroup:
    return NoticeGroup(notice_id="grp_1", group_labels={"alertname": "high_cpu"}, notices=list(notices))


def _mounts(count: int) -> NoticeGroup:
    return _group(*[
        sample_notice(notice_id=f"n{i}", fingerprint=f"{i:016x}", labels={"host": "atlas-01", "mount": f"/m{i}"})
        for i in range(count)
    ])


def test_top_level_shape() -> None:
    """The body has exactly the v4 keys and version "4"."""
    body = _body(_mounts(1))
    assert set(body) == TOP_LEVEL_KEYS
    assert body["version"] == "4"
    assert body["receiver"] == "ops-webhook"
    assert body["externalURL"] == "http://atlas-01:9777"


def test_validates_against_model() -> None:
    """The body validates against the v4 model (extra keys forbidden)."""
    AlertmanagerPayload.model_validate(_body(_mounts(3)))


def test_alert_shape() -> None:
    """Each alert has the v4 alert keys, labels with alertname and severity, and a generator URL."""
    alert = _body(_mounts(1))["alerts"][0]
    assert set(alert) == ALERT_KEYS
    assert alert["labels"] == {"alertname": "high_cpu", "severity": "critical", "host": "atlas-01", "mount": "/m0"}
    assert alert["annotations"] == {"summary": "CPU above 80 %", "runbook_url": "https://wiki.example/runbooks/cpu"}
    assert alert["startsAt"] == "2025-01-14T09:12:00Z"
    assert alert["generatorURL"] == "atlas://rules/high_cpu"
    assert alert["fingerprint"] == "0000000000000000"


def test_firing_ends_at_zero_time() -> None:
    """A firing alert's endsAt is the zero time."""
    assert _body(_mounts(1))["alerts"][0]["endsAt"] == ZERO_TIME


def test_resolved_ends_at_real_time() -> None:
    """A resolved alert carries its real end time, and the group is resolved."""
    body = _body(_group(sample_notice(kind="resolved", ends_at=1736846520.0)))
    assert body["status"] == "resolved"
    assert body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2025-01-14T09:22:00Z"


def test_mixed_group_is_firing() -> None:
    """A group with one firing and one resolved alert has status firing."""
    body = _body(_group(sample_notice(), sample_notice(notice_id="n2", kind="resolved", ends_at=1736846520.0)))
    assert body["status"] == "firing"


def test_group_key() -> None:
    """groupKey is `{}:{alertname="high_cpu"}` for a group by alertname."""
    assert _body(_mounts(1))["groupKey"] == '{}:{alertname="high_cpu"}'


def test_group_key_quotes_values() -> None:
    """Quotes in group label values are escaped and keys are sorted."""
    assert group_key({"b": 'x"y', "a": "1"}) == '{}:{a="1",b="x\\"y"}'


def test_common_labels_and_annotations() -> None:
    """commonLabels keep only pairs every alert shares; commonAnnotations likewise."""
    first = sample_notice(annotations=Annotations(summary="same", runbook_url="https://a"))
    second = sample_notice(notice_id="n2", labels={"host": "atlas-02"},
                           annotations=Annotations(summary="same", runbook_url="https://b"))
    body = _body(_group(first, second))
    assert body["commonLabels"] == {"alertname": "high_cpu", "severity": "critical"}
    assert body["commonAnnotations"] == {"summary": "same"}


def test_truncated_alerts_counted() -> None:
    """With max_alerts 2 and 5 alerts, 2 are sent and truncatedAlerts is 3."""
    body = _body(_mounts(5), max_alerts=2)
    assert len(body["alerts"]) == 2
    assert body["truncatedAlerts"] == 3


def test_max_alerts_zero_sends_all() -> None:
    """max_alerts 0 sends every alert."""
    body = _body(_mounts(30))
    assert len(body["alerts"]) == 30
    assert body["truncatedAlerts"] == 0


def test_note_carried_as_annotation() -> None:
    """A note such as `resolved during downtime` reaches the receiver as an annotation."""
    notice = sample_notice(kind="resolved", ends_at=1736846520.0, note="resolved during downtime")
    assert _body(_group(notice))["alerts"][0]["annotations"]["note"] == "resolved during downtime"
