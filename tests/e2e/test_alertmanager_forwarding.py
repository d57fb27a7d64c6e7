"""End to end: a daemon forwards an alert to a real Alertmanager, re-sends it while firing, then resolves it.

Debian's `prometheus-alertmanager` runs on 127.0.0.1 with a temporary config: a
null default receiver and a webhook receiver, a `HookServer` in this test, for the
rule under test. The daemon probes a `StatusPage` every 0.5 s, and its rule
`probe_up < 1` routes to an `alertmanager` channel with a 2 s re-send interval.
The page first fails, so the alert fires. The test reads it back through
Alertmanager's API with every label, waits for a re-send to move its `endsAt`, and
waits for Alertmanager to notify the webhook. Then the page recovers, and the alert must leave
Alertmanager's active list within 6 s. A firing alert's `endsAt` is at least 6 s
ahead at that moment (four 2 s intervals from the latest re-send), and the resolved
webhook's `endsAt` must equal the resolve time the daemon stored, which an expiry
in Alertmanager would not give.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from atlas_tui.alerts.channels.alertmanager import AlertmanagerPayload
from tests.e2e.channels import EVALUATION_INTERVAL
from tests.e2e.hooks import HookServer
from tests.e2e.monitoring import ALERTMANAGER, MonitoringServer, StatusPage, wait_for
from tests.e2e.processes import AtlasDaemon
from tests.e2e.store_reads import alerts

pytestmark = pytest.mark.e2e

RULE_ID = "shop_down"
RESEND_INTERVAL = 2.0
EXPECTED_LABELS = {
    "alertname": RULE_ID, "severity": "critical", "team": "web", "target": "shop", "host": "atlas-e2e",
}


@pytest.fixture
def status_page() -> Iterator[StatusPage]:
    """The page the daemon probes; it fails until the test sets status 200."""
    page = StatusPage(status=503).start()
    yield page
    page.stop()


@pytest.fixture
def hook() -> Iterator[HookServer]:
    """The webhook receiver Alertmanager notifies."""
    with HookServer() as server:
        yield server


@pytest.fixture
def alertmanager(tmp_path: Path, hook: HookServer) -> Iterator[MonitoringServer]:
    """Alertmanager routing the rule's alerts to `hook` and everything else to a null receiver."""
    config = {
        "route": {
            "receiver": "null",
            "group_by": ["alertname"],
            "group_wait": "100ms",
            "group_interval": "500ms",
            "repeat_interval": "1h",
            "routes": [{"receiver": "hook", "matchers": [f'alertname="{RULE_ID}"']}],
        },
        "receivers": [
            {"name": "null"},
            {"name": "hook", "webhook_configs": [{"url": hook.url, "send_resolved": True}]},
        ],
    }
    server = MonitoringServer.start(ALERTMANAGER, tmp_path / "alertmanager", config)
    yield server
    server.stop()


@pytest.fixture
def daemon(tmp_path: Path, alertmanager: MonitoringServer, status_page: StatusPage) -> Iterator[AtlasDaemon]:
    """A daemon whose probe rule forwards to `alertmanager`, without host metrics or an API."""
    config = {
        "collectors": {
            "system": {"enabled": False},
            "probes": [{"name": "shop", "url": status_page.url, "interval": "0.5s", "timeout": "0.4s"}],
        },
        "alerting": {"evaluation_interval": f"{EVALUATION_INTERVAL:g}s"},
        "alert_rules": [{
            "id": RULE_ID, "name": "Shop health check failing", "condition": "probe_up < 1",
            "severity": "critical", "cooldown_min": 0, "channels": ["am"], "labels": {"team": "web"},
            "annotations": {"summary": "The shop's health page does not answer 200"},
        }],
        "channels": {"am": {
            "type": "alertmanager", "url": alertmanager.url, "resend_interval": f"{RESEND_INTERVAL:g}s",
            "external_labels": {"host": "atlas-e2e"}, "timeout": "2s",
        }},
    }
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    started = AtlasDaemon.start(tmp_path / "data", config_path, tmp_path / "daemon.log", api=False)
    yield started
    started.ensure_dead()


def active_alerts(alertmanager: MonitoringServer) -> list[dict[str, Any]]:
    """Return the rule's alerts that Alertmanager lists as not ended."""
    return [alert for alert in alertmanager.get_json("/api/v2/alerts") if alert["labels"]["alertname"] == RULE_ID]


def notified(hook: HookServer, status: str) -> list[AlertmanagerPayload]:
    """Return the webhook bodies Alertmanager sent with the group status `status`."""
    payloads = [AlertmanagerPayload.model_validate(hit.json()) for hit in hook.hits()]
    return [payload for payload in payloads if payload.status == status]


def epoch(text: str) -> float:
    """Parse an RFC 3339 time from Alertmanager into UTC epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_alert_forwarded_resent_and_resolved(
    daemon: AtlasDaemon, alertmanager: MonitoringServer, hook: HookServer, status_page: StatusPage
) -> None:
    """The alert reaches Alertmanager with its labels, is re-sent while firing, and resolves with the daemon."""
    assert daemon.wait_started(), daemon.log()

    wait_for(lambda: bool(active_alerts(alertmanager)), 20.0, "the forwarded alert in Alertmanager")
    alert = active_alerts(alertmanager)[0]
    assert alert["labels"] == EXPECTED_LABELS
    assert alert["annotations"]["summary"] == "The shop's health page does not answer 200"
    assert alert["annotations"]["value"] == "0"
    assert alert["status"]["state"] == "active"
    assert alert["generatorURL"] == f"atlas://rules/{RULE_ID}"
    first_ends_at = epoch(alert["endsAt"])

    wait_for(lambda: epoch(active_alerts(alertmanager)[0]["endsAt"]) > first_ends_at, 3 * RESEND_INTERVAL,
             "a re-send moving endsAt forward")
    assert epoch(active_alerts(alertmanager)[0]["startsAt"]) == epoch(alert["startsAt"])
    wait_for(lambda: bool(notified(hook, "firing")), 10.0, "Alertmanager's firing webhook")
    assert notified(hook, "firing")[0].alerts[0].labels == EXPECTED_LABELS

    status_page.status = 200
    wait_for(lambda: not active_alerts(alertmanager), 3 * RESEND_INTERVAL, "the alert leaving Alertmanager")
    wait_for(lambda: bool(notified(hook, "resolved")), 10.0, "Alertmanager's resolved webhook")

    resolved = notified(hook, "resolved")[0].alerts[0]
    stored = [record for record in alerts(daemon.data_dir) if record.rule_id == RULE_ID][0]
    assert resolved.labels == EXPECTED_LABELS
    assert stored.state == "resolved"
    assert stored.resolved_at is not None
    assert epoch(resolved.ends_at) == pytest.approx(stored.resolved_at, abs=0.001)
    assert "alertmanager re-send failed" not in daemon.log()
