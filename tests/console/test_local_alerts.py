"""The console's alert reads and acknowledgements against a real SQLite store.

The store is written by the real alert service (`AlertService.evaluate_once`) over
real samples, and channel failures by the outbox's `record_attempt`, so these
tests exercise the same rows a daemon would leave.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_tui.alerts.actions import AlertNotFoundError
from atlas_tui.alerts.errors import AlertStateError
from atlas_tui.alerts.service import AlertService
from atlas_tui.config import Config
from atlas_tui.console.app import create_app
from atlas_tui.console.local_alerts import read_alert_detail, read_alerts
from atlas_tui.console.local_source import LocalSource
from atlas_tui.console.main_screen import MainScreen
from atlas_tui.console.widgets.alerts_table import AlertsTable
from collectors.base import Sample
from storage.alerts import get_alert
from storage.db import open_store
from storage.metrics import write_samples
from storage.outbox import AttemptOutcome, ChannelUpdate, next_due, record_attempt
from tests.console.pilot_helpers import wait_until

NOW = 1_750_000_000.0
EVALUATED = NOW - 600
"""When the fixture's alert service evaluated the rules."""
ACTOR = "opsuser"


def _config() -> Config:
    return Config.model_validate(
        {
            "alert_rules": [
                {"id": "disk_full", "name": "Disk full", "condition": "disk_usage > 90", "severity": "critical",
                 "channels": ["email", "slack"],
                 "annotations": {"runbook_url": "https://runbooks.example.org/disk"}},
                {"id": "quiet", "name": "Quiet", "condition": "memory_usage > 99", "severity": "warning"},
                {"id": "typo", "name": "Typo", "condition": "cpu_usge > 1", "severity": "info"},
            ],
            "channels": {
                "email": {"type": "email", "host": "127.0.0.1", "from": "atlas@example.org",
                          "to": ["ops@example.org"]},
                "slack": {"type": "slack", "webhook_url_env": "ATLAS_TEST_SLACK_URL"},
            },
        }
    )


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store with one firing critical alert on `/data`, evaluated at `EVALUATED`."""
    monkeypatch.setenv("USER", ACTOR)
    monkeypatch.delenv("SUDO_USER", raising=False)
    conn = open_store(tmp_path)
    samples = []
    for step in range(12):
        ts = EVALUATED - 115 + step * 10
        samples.append(Sample.of("disk_usage", 95.0, ts, mount="/data"))
        samples.append(Sample.of("disk_usage", 20.0, ts, mount="/"))
        samples.append(Sample.of("memory_usage", 40.0, ts))
    write_samples(conn, samples)
    conn.close()
    service = AlertService(_config(), tmp_path, statuses=list)
    service.evaluate_once(EVALUATED)
    service.close()
    return tmp_path


def _fail_channels(data_dir: Path, at: float) -> None:
    """Record one failed attempt on every channel at `at`."""
    conn = open_store(data_dir)
    try:
        for channel in ("email", "slack"):
            row = next_due(conn, channel, at)
            assert row is not None
            outcome = AttemptOutcome("pending", "retry", "connection refused", next_attempt_at=at + 60,
                                     error_class="connect_refused")
            record_attempt(conn, row.id, channel, outcome, ChannelUpdate("failing", success=False), now=at)
    finally:
        conn.close()


def test_read_alerts_lists_firing(store: Path) -> None:
    """The firing alert is listed with its labels and counted; the broken rule is reported."""
    conn = open_store(store)
    alerts = read_alerts(conn, _config(), NOW)
    conn.close()
    firing = [row for row in alerts.rows if row.state == "firing"]
    assert [(row.rule_id, row.labels) for row in firing] == [("disk_full", (("mount", "/data"),))]
    assert firing[0].age_seconds == 600.0
    assert alerts.counts.critical == 1
    assert alerts.counts.total == 1
    assert [problem.rule_id for problem in alerts.rule_problems] == ["typo"]
    assert "unknown metric cpu_usge" in alerts.rule_problems[0].message
    assert alerts.last_evaluation == EVALUATED
    assert [channel.channel for channel in alerts.channels] == ["email", "slack"]
    assert alerts.channels[0].queue_depth == 1


def test_banner_after_five_minutes_down(store: Path) -> None:
    """Every channel failing for 400 s sets the banner; failing for 200 s does not."""
    _fail_channels(store, NOW - 400)
    conn = open_store(store)
    try:
        assert read_alerts(conn, _config(), NOW).channels_down_for == 400.0
        assert read_alerts(conn, _config(), NOW - 200).channels_down_for is None
        slack = read_alerts(conn, _config(), NOW).channels[1]
    finally:
        conn.close()
    assert (slack.state, slack.last_error_class, slack.next_retry_at) == ("failing", "connect_refused", NOW)


def test_detail_has_timeline_and_deliveries(store: Path) -> None:
    """The detail carries the rule's runbook, the firing transition and one notice per channel."""
    conn = open_store(store)
    try:
        alert_id = read_alerts(conn, _config(), NOW).rows[0].alert_id
        detail = read_alert_detail(conn, _config(), alert_id, NOW)
        missing = read_alert_detail(conn, _config(), "alert_999", NOW)
    finally:
        conn.close()
    assert detail is not None
    assert detail.condition == "disk_usage > 90"
    assert ("runbook_url", "https://runbooks.example.org/disk") in detail.annotations
    assert [(e.kind, e.to_state) for e in detail.timeline] == [("firing", "firing")]
    assert sorted((d.channel, d.kind, d.status) for d in detail.deliveries) == [
        ("email", "firing", "pending"), ("slack", "firing", "pending")
    ]
    assert missing is None


def test_source_ack_records_user(store: Path) -> None:
    """`LocalSource.acknowledge` stores `$USER` and the note; `unacknowledge` removes them."""
    source = LocalSource(_config(), store, embedded=False)
    source.start(NOW)
    try:
        alert_id = source.alerts(NOW).rows[0].alert_id
        row = source.acknowledge(alert_id, "cleaning up", NOW)
        assert row.acked_by == ACTOR
        assert source.unacknowledge(alert_id, NOW + 1).acked_by is None
        with pytest.raises(AlertNotFoundError):
            source.acknowledge("alert_999", "", NOW)
        with pytest.raises(AlertStateError):
            source.unacknowledge(alert_id, NOW + 2)
    finally:
        source.close()


async def test_pilot_ack_writes_store(store: Path) -> None:
    """At 80x24, `2`, `a`, a note and Enter acknowledge the selected alert in the store; `u` undoes it."""
    config = _config()
    app = create_app(config, store, source=LocalSource(config, store, embedded=False), live=False, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.main_screen.alerts_shown > 0)
        await pilot.press("2")
        table = app.main_screen.query_one(AlertsTable)
        alert_id = table.selected_key
        assert alert_id is not None

        await pilot.press("a", "d", "i", "s", "k", "enter")
        assert await wait_until(pilot, lambda: table.get_cell(alert_id, "state").plain == f"acked by {ACTOR}")
        assert isinstance(app.screen, MainScreen)
        conn = open_store(store)
        try:
            record = get_alert(conn, alert_id)
            assert record is not None
            assert (record.ack_by, record.ack_message, record.ack_at) == (ACTOR, "disk", NOW)

            await pilot.press("u")
            assert await wait_until(pilot, lambda: table.get_cell(alert_id, "state").plain == "firing")
            record = get_alert(conn, alert_id)
            assert record is not None
            assert record.ack_by is None
        finally:
            conn.close()
