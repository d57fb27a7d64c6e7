"""The syslog fallback: when every channel has been down 5 minutes, critical alerts go to syslog once."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.alerts.fallback import (
    FALLBACK_AFTER,
    CriticalFallback,
    SyslogSocketWriter,
    all_channels_down,
)
from atlas_tui.alerts.state import AlertState, InstanceState
from atlas_tui.config import Config
from collectors.base import make_labels
from storage.alerts import InstanceRow, save_instances
from storage.db import open_store
from storage.outbox import (
    AttemptOutcome,
    ChannelHealthRecord,
    ChannelUpdate,
    OutboxItem,
    enqueue,
    next_due,
    record_attempt,
)

NOW = 1736846000.0
CHANNELS = {
    "slack": {"type": "slack", "webhook_url_env": "ATLAS_TEST_FALLBACK_SLACK"},
    "ops": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
}


def _health(channel: str, state: str, failing_since: float | None) -> ChannelHealthRecord:
    return ChannelHealthRecord(channel=channel, state=state, last_success_at=None,  # type: ignore[arg-type]
                               last_error_at=failing_since, last_error_class=None, last_error=None,
                               http_status=None, response_body=None, next_retry_at=None,
                               consecutive_failures=1 if failing_since else 0, failing_since=failing_since,
                               queue_depth=0, held=0, dead_letters=0)


@pytest.mark.parametrize(
    ("records", "channels", "expected"),
    [
        ([], None, False),
        ([_health("slack", "failing", NOW - 300)], None, True),
        ([_health("slack", "failing", NOW - 299)], None, False),
        ([_health("slack", "degraded", NOW - 600), _health("ops", "misconfigured", NOW - 301)], None, True),
        ([_health("slack", "failing", NOW - 600), _health("ops", "ok", None)], None, False),
        ([_health("slack", "failing", NOW - 600)], ["slack", "ops"], False),
        ([_health("slack", "failing", NOW - 600), _health("old", "ok", None)], ["slack"], True),
    ],
    ids=["no-channels", "one-down-5min", "one-down-299s", "degraded-and-misconfigured", "one-ok",
         "configured-never-tried", "unconfigured-ignored"],
)
def test_all_channels_down(records: list[ChannelHealthRecord], channels: list[str] | None, expected: bool) -> None:
    """Every configured channel must have been down at least 5 minutes."""
    assert all_channels_down(records, NOW, channels=channels) is expected


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A migrated store in a temporary data directory."""
    conn = open_store(tmp_path)
    yield conn
    conn.close()


def _alert(conn: sqlite3.Connection, rule_id: str, severity: str, *, incident: int = 1,
           silenced: bool = False, state: AlertState = AlertState.FIRING) -> None:
    labels = make_labels({"mount": "/"})
    record = InstanceState(fingerprint=f"{rule_id:0>16}"[:16], rule_id=rule_id, labels=labels, state=state,
                           value=97.5, fired_at=NOW - 900, active_since=NOW - 900, incident_seq=incident)
    save_instances(conn, [InstanceRow(state=record, rule_name=rule_id, severity=severity,
                                      labels={"mount": "/", "alertname": rule_id}, silenced=silenced)], NOW)


def _fail_channel(conn: sqlite3.Connection, channel: str, since: float) -> None:
    enqueue(conn, [OutboxItem(f"n-{channel}", channel, "firing", None, "fp", "{}", since)])
    row = next_due(conn, channel, since)
    assert row is not None
    outcome = AttemptOutcome("pending", "retry", f"channel {channel}: refused", next_attempt_at=since + 300,
                             error_class="connect_refused")
    record_attempt(conn, row.id, channel, outcome, ChannelUpdate("failing", success=False), now=since)


def _fallback(tmp_path: Path, lines: list[str]) -> CriticalFallback:
    return CriticalFallback(Config.model_validate({"channels": CHANNELS}), tmp_path, writer=lines.append)


def test_writes_once_per_incident(tmp_path: Path, store: sqlite3.Connection) -> None:
    """Each firing critical alert is written once; warnings, silenced alerts and repeats are not."""
    _alert(store, "disk_full", "critical")
    _alert(store, "cpu_high", "warning")
    _alert(store, "quiet", "critical", silenced=True)
    for channel in CHANNELS:
        _fail_channel(store, channel, NOW - FALLBACK_AFTER)
    lines: list[str] = []
    fallback = _fallback(tmp_path, lines)

    first = fallback.check(store, NOW)
    second = fallback.check(store, NOW + 15)

    assert len(first) == 1
    assert "disk_full" in first[0]
    assert "mount=/" in first[0]
    assert "value=97.5" in first[0]
    assert second == []
    assert lines == first


def test_new_incident_written_again(tmp_path: Path, store: sqlite3.Connection) -> None:
    """A new incident of the same alert is written again."""
    _alert(store, "disk_full", "critical")
    for channel in CHANNELS:
        _fail_channel(store, channel, NOW - FALLBACK_AFTER)
    lines: list[str] = []
    fallback = _fallback(tmp_path, lines)
    fallback.check(store, NOW)
    _alert(store, "disk_full", "critical", incident=2)
    fallback.check(store, NOW + 15)
    assert len(lines) == 2


def test_silent_while_one_channel_works(tmp_path: Path, store: sqlite3.Connection) -> None:
    """Nothing is written while one channel has been down less than 5 minutes."""
    _alert(store, "disk_full", "critical")
    _fail_channel(store, "slack", NOW - 3600)
    _fail_channel(store, "ops", NOW - 60)
    lines: list[str] = []
    assert _fallback(tmp_path, lines).check(store, NOW) == []
    assert lines == []


def test_socket_writer_sends_crit(tmp_path: Path) -> None:
    """The writer sends `<26>atlas[pid]: message` (daemon facility, crit) to a unix datagram socket."""
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        SyslogSocketWriter(str(path))("critical alert firing: alert_1 rule=disk_full")
        data = server.recv(4096)
    assert data.startswith(b"<26>atlas[")
    assert data.endswith(b"]: critical alert firing: alert_1 rule=disk_full")


def test_missing_socket_logs(tmp_path: Path, store: sqlite3.Connection, caplog: pytest.LogCaptureFixture) -> None:
    """Without a syslog socket the line goes to the daemon's log at CRITICAL instead."""
    _alert(store, "disk_full", "critical")
    for channel in CHANNELS:
        _fail_channel(store, channel, NOW - FALLBACK_AFTER)
    writer = SyslogSocketWriter(str(tmp_path / "missing.sock"))
    fallback = CriticalFallback(Config.model_validate({"channels": CHANNELS}), tmp_path, writer=writer)
    with caplog.at_level(logging.CRITICAL, logger="atlas_tui.alerts.fallback"):
        [line] = fallback.check(store, NOW)
    logged = [record.getMessage() for record in caplog.records if record.levelno == logging.CRITICAL]
    assert any(line in message and "syslog unavailable" in message for message in logged)


async def test_run_checks_until_stopped(tmp_path: Path, store: sqlite3.Connection) -> None:
    """`run` checks on its interval with its own connection and returns when stopped."""
    _alert(store, "disk_full", "critical")
    for channel in CHANNELS:
        _fail_channel(store, channel, NOW - FALLBACK_AFTER)
    lines: list[str] = []
    fallback = CriticalFallback(Config.model_validate({"channels": CHANNELS}), tmp_path, writer=lines.append,
                                clock=lambda: NOW, interval=0.05)
    stopping = asyncio.Event()
    task = asyncio.create_task(fallback.run(stopping))
    for _ in range(100):
        if lines:
            break
        await asyncio.sleep(0.02)
    stopping.set()
    await asyncio.wait_for(task, timeout=2)
    assert len(lines) == 1
