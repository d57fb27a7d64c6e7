"""The Alertmanager channel: config checks, postable alerts, the endpoint and the re-send selection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from atlas_tui.alerts.actions import acknowledge, create_silence
from atlas_tui.alerts.channels.alertmanager_api import (
    ENDS_AT_INTERVALS,
    PostableAlert,
    alerts_endpoint,
    build_postable_alerts,
)
from atlas_tui.alerts.channels.dispatch import should_send
from atlas_tui.alerts.channels.message import Ack, NoticeGroup
from atlas_tui.alerts.channels.models import AlertmanagerChannel, parse_channels
from atlas_tui.alerts.channels.result import DeliveryResult, DeliveryStatus, ErrorClass
from atlas_tui.alerts.channels.render import format_rfc3339
from atlas_tui.alerts.resend import Resender, resender_for
from atlas_tui.alerts.rules import load_rules
from atlas_tui.config import Config, load_config
from atlas_tui.errors import ConfigError
from tests.alerts.alert_harness import T0, Harness, cpu_rule
from tests.alerts.receivers import sample_notice

NOW = 1736846000.0


def channel(**fields: Any) -> AlertmanagerChannel:
    """Return an Alertmanager channel at 127.0.0.1:9093 with `fields` set."""
    raw = {"type": "alertmanager", "url": "http://127.0.0.1:9093", **fields}
    return AlertmanagerChannel.model_validate(raw)


def postable(notice_fields: dict[str, Any] | None = None, **channel_fields: Any) -> PostableAlert:
    """Build the postable alert of one sample notice on host `atlas-host`."""
    group = NoticeGroup(notice_id="g", notices=[sample_notice(**(notice_fields or {}))])
    return build_postable_alerts(group, channel(**channel_fields), now=NOW, host="atlas-host")[0]


def test_channel_parsed_from_config() -> None:
    """`type: alertmanager` selects the model; the URL loses its trailing slash."""
    parsed = parse_channels({"am": {"type": "alertmanager", "url": "http://127.0.0.1:9093/am/", "resend_interval": "2m"}})

    config = parsed["am"]
    assert isinstance(config, AlertmanagerChannel)
    assert config.url == "http://127.0.0.1:9093/am"
    assert config.resend_interval == 120.0
    assert alerts_endpoint(config) == "http://127.0.0.1:9093/am/api/v2/alerts"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "ftp://127.0.0.1"}, "expected an http:// or https:// URL"),
        ({"url": "http://127.0.0.1:9093/?x=1"}, "without a query or fragment"),
        ({"external_labels": {"data-center": "x"}}, "invalid label name 'data-center'"),
        ({"external_labels": {"__name__": "x"}}, "invalid label name '__name__'"),
        ({"resend_interval": 0.5}, "greater than or equal to 1"),
        ({"bearer_token_env": "A", "bearer_token_file": "/b"}, "either bearer_token_env or bearer_token_file"),
    ],
)
def test_channel_invalid(fields: dict[str, Any], message: str) -> None:
    """Invalid URLs, label names, intervals and token sources are rejected with the reason."""
    with pytest.raises(ValidationError, match=message):
        channel(**fields)


def test_config_error_path_has_no_type_level(tmp_path: Path) -> None:
    """A config error names the field as `channels.<name>.<key>`, like the other channel types."""
    path = tmp_path / "config.json"
    path.write_text('{"channels": {"am": {"type": "alertmanager", "url": "nope"}}}', encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert "channels.am.url: expected an http:// or https:// URL" in str(caught.value)


def test_firing_labels() -> None:
    """Labels: the notice's, plus severity, alertname, external labels and host."""
    alert = postable({"labels": {"mount": "/", "team-name": "db"}}, external_labels={"dc": "fra1"})

    assert alert.labels == {
        "host": "atlas-host", "dc": "fra1", "severity": "critical", "mount": "/", "team_name": "db",
        "alertname": "high_cpu",
    }


def test_notice_labels_win_over_external() -> None:
    """A label the notice has is not replaced by the channel's external label or host."""
    alert = postable({"labels": {"host": "db-7"}}, external_labels={"host": "ignored", "dc": "fra1"})

    assert alert.labels["host"] == "db-7"
    assert alert.labels["dc"] == "fra1"


def test_external_host_replaces_hostname() -> None:
    """`external_labels.host` names the daemon when several run on one machine."""
    alert = postable({"labels": {}}, external_labels={"host": "daemon-2"})

    assert alert.labels["host"] == "daemon-2"


def test_firing_times() -> None:
    """A firing alert starts at the incident start and ends four re-send intervals ahead."""
    alert = postable(resend_interval=30)

    assert alert.starts_at == format_rfc3339(1736845920.0)
    assert alert.ends_at == format_rfc3339(NOW + ENDS_AT_INTERVALS * 30)


def test_resolved_times() -> None:
    """A resolved alert ends at the resolve time, never before it started."""
    resolved = postable({"kind": "resolved", "ends_at": 1736845990.0})
    early = postable({"kind": "resolved", "ends_at": 1736845000.0})

    assert resolved.ends_at == format_rfc3339(1736845990.0)
    assert early.ends_at == early.starts_at


def test_test_notice_ends_after_one_interval() -> None:
    """A test alert from `atlas notify test` ends after one re-send interval."""
    alert = postable({"kind": "test"}, resend_interval=60)

    assert alert.ends_at == format_rfc3339(NOW + 60)


def test_annotations() -> None:
    """Annotations carry summary, runbook, value, note and who acknowledged; empty ones are left out."""
    alert = postable({"note": "resolved during downtime", "ack": Ack(by="alice", at=NOW)})
    bare = postable({"annotations": {"summary": "x"}, "value": None})

    assert alert.annotations == {
        "summary": "CPU above 80 %", "runbook_url": "https://wiki.example/runbooks/cpu", "value": "93.4",
        "note": "resolved during downtime", "acknowledged_by": "alice",
    }
    assert bare.annotations == {"summary": "x"}


def test_body_shape() -> None:
    """The JSON body is a list of alerts with the v2 API's camel-case keys."""
    alert = postable()

    body = json.loads(alert.model_dump_json(by_alias=True))

    assert set(body) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert body["generatorURL"] == "atlas://rules/high_cpu"


def test_acknowledge_notices_not_sent() -> None:
    """Alertmanager gets firing, repeat and resolved notices but no acknowledge notice."""
    config = channel()

    assert should_send(config, sample_notice(kind="firing"))
    assert should_send(config, sample_notice(kind="resolved", ends_at=NOW))
    assert not should_send(config, sample_notice(kind="acknowledge", ack=Ack(by="alice", at=NOW)))


def test_resender_only_for_alertmanager() -> None:
    """Only Alertmanager channels get a resender, with the channel's interval."""
    rules = load_rules([cpu_rule(channels=["am"])]).rules
    webhook = parse_channels({"hook": {"type": "webhook", "url": "http://127.0.0.1:9/"}})["hook"]

    resender = resender_for("am", channel(resend_interval=5), rules)

    assert resender_for("hook", webhook, rules) is None
    assert resender is not None
    assert resender.interval == 5.0


def test_resender_schedule_and_log(caplog: pytest.LogCaptureFixture) -> None:
    """A re-send is due at once, then one interval after each attempt; failures are logged once a minute."""
    resender = Resender("am", 10.0, [])
    failed = DeliveryResult(status=DeliveryStatus.RETRY, error_class=ErrorClass.CONNECT_REFUSED, message="refused")

    assert resender.due_in(NOW) == 0
    resender.finished(failed, 2, NOW)
    resender.finished(failed, 2, NOW + 10)
    resender.finished(failed, 2, NOW + 70)

    assert resender.due_in(NOW + 75) == 5.0
    assert sum("re-send failed" in record.message for record in caplog.records) == 2


def am_config(**rule_fields: Any) -> Config:
    """Return a config with one `high_cpu` rule routed to the Alertmanager channel `am`."""
    return Config.model_validate({
        "alert_rules": [cpu_rule(channels=["am"], labels={"team": "db"}, **rule_fields)],
        "channels": {"am": {"type": "alertmanager", "url": "http://127.0.0.1:9/"}},
    })


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A store and alert service with the `am` channel."""
    made = Harness(tmp_path / "data", am_config())
    yield made
    made.service.close()
    made.conn.close()


def collect(harness: Harness, at: float) -> NoticeGroup | None:
    """Run the `am` channel's re-send collection over the harness store at `T0 + at`."""
    resender = Resender("am", 60.0, load_rules(harness.config.alert_rules).rules)
    return resender.collect(harness.conn, T0 + at)


def test_resend_firing_incident(harness: Harness) -> None:
    """A firing incident whose firing notice went to the channel is re-sent with its labels."""
    harness.step(0, 95.0)

    group = collect(harness, 30)

    assert group is not None
    notice = group.notices[0]
    assert notice.kind == "repeat"
    assert notice.labels == {"team": "db", "alertname": "high_cpu"}
    assert notice.starts_at == T0
    assert notice.value == 95.0


def test_resend_nothing_when_inactive(harness: Harness) -> None:
    """No group while nothing fires, and none after the incident resolved."""
    harness.step(0, 10.0)
    assert collect(harness, 1) is None

    harness.step(10, 95.0)
    harness.step(20, 10.0)

    assert collect(harness, 21) is None


def test_resend_keeps_acknowledged(harness: Harness) -> None:
    """An acknowledged incident is still re-sent, so Alertmanager does not resolve it."""
    harness.step(0, 95.0)
    acknowledge(harness.conn, "alert_1", by="alice", message="on it", now=T0 + 5, config=harness.config)

    group = collect(harness, 10)

    assert group is not None
    assert group.notices[0].ack is not None


def test_resend_skips_silenced(harness: Harness) -> None:
    """A silenced incident is not re-sent."""
    harness.step(0, 95.0)
    create_silence(harness.conn, "alertname=high_cpu", starts_at=T0 + 1, ends_at=T0 + 3600,
                   created_by="alice", comment="maintenance")

    assert collect(harness, 10) is None


def test_resend_skips_incident_held_by_cooldown(tmp_path: Path) -> None:
    """A re-fire inside the cooldown sent no firing notice, so it is not re-sent either."""
    harness = Harness(tmp_path / "data", am_config(cooldown_min=15))
    try:
        harness.step(0, 95.0)
        harness.step(10, 10.0)
        harness.step(20, 95.0)

        assert collect(harness, 21) is None
    finally:
        harness.service.close()
        harness.conn.close()


def test_resend_skips_other_channels(tmp_path: Path) -> None:
    """Rules that do not list the channel are not re-sent on it."""
    config = Config.model_validate({
        "alert_rules": [cpu_rule(channels=["hook"])],
        "channels": {"am": {"type": "alertmanager", "url": "http://127.0.0.1:9/"},
                     "hook": {"type": "webhook", "url": "http://127.0.0.1:9/"}},
    })
    harness = Harness(tmp_path / "data", config)
    try:
        harness.step(0, 95.0)

        assert collect(harness, 1) is None
    finally:
        harness.service.close()
        harness.conn.close()
