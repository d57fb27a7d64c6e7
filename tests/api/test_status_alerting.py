"""`GET /api/system/status`: the alert engine's health and the failure fields of each channel.

A remote console builds its rule-health line and its all-channels-down banner from
these fields, so they must carry what the local store gives the local console.
"""

from __future__ import annotations

from pathlib import Path

from atlas_tui.alerts.service import AlertService
from atlas_tui.config import Config
from storage.db import open_store
from storage.outbox import AttemptOutcome, ChannelUpdate, next_due, record_attempt
from tests.api.conftest import NOW

CONFIG = Config.model_validate(
    {
        "alert_rules": [
            {"id": "disk_full", "condition": "disk_usage > 70", "severity": "critical", "channels": ["ops"]},
            {"id": "typo", "condition": "cpu_usge > 1", "severity": "info"},
        ],
        "channels": {"ops": {"type": "webhook", "url": "https://hooks.example.org/atlas"}},
    }
)


async def test_status_without_evaluation(serve, data_dir: Path) -> None:
    """Before the engine's first cycle the alerting section is empty."""
    client = await serve(data_dir)

    body = (await client.get("/api/system/status")).json()

    assert body["alerting"] == {"last_evaluation": None, "missed_evaluations": 0, "rule_problems": []}


async def test_status_reports_rule_problems(serve, data_dir: Path) -> None:
    """After an evaluation the section has its time and each rule that cannot evaluate, with the reason."""
    service = AlertService(CONFIG, data_dir, statuses=list)
    service.evaluate_once(NOW - 5.0)
    service.close()
    client = await serve(data_dir)

    alerting = (await client.get("/api/system/status")).json()["alerting"]

    assert alerting["last_evaluation"] == NOW - 5.0
    assert alerting["missed_evaluations"] == 0
    assert [problem["rule_id"] for problem in alerting["rule_problems"]] == ["typo"]
    assert "cpu_usge" in alerting["rule_problems"][0]["message"]


async def test_status_channel_failure_fields(serve, data_dir: Path) -> None:
    """A failed attempt shows as the channel's error class, next retry and failing-since time."""
    service = AlertService(CONFIG, data_dir, statuses=list)
    service.evaluate_once(NOW)
    service.close()
    conn = open_store(data_dir)
    try:
        row = next_due(conn, "ops", NOW)
        assert row is not None
        outcome = AttemptOutcome("pending", "retry", "connection refused", next_attempt_at=NOW + 60.0,
                                 error_class="connect_refused")
        record_attempt(conn, row.id, "ops", outcome, ChannelUpdate("failing", success=False), now=NOW)
    finally:
        conn.close()
    client = await serve(data_dir)

    channels = (await client.get("/api/system/status")).json()["channels"]

    ops = next(channel for channel in channels if channel["name"] == "ops")
    assert ops["state"] == "failing"
    assert ops["last_error_class"] == "connect_refused"
    assert ops["next_retry_at"] == NOW + 60.0
    assert ops["failing_since"] == NOW
