"""Demo alerts for screenshots and snapshot tests, made by the real alerting code paths.

`demo_store.build_demo_store` calls `build_demo_alerts` after writing the demo
samples. Nothing here writes alert tables directly. The alert service evaluates
`demo_config()`'s rules over the stored samples (`AlertService.evaluate_once`).
The acknowledgement and the silence go through `atlas_tui.alerts.actions`. The
notices the service queued are marked sent or failed with the outbox sender's own
`storage.outbox.record_attempt`. So a screenshot shows what a store written by
the daemon would show. No network is used: delivery outcomes are recorded, not sent.

At `DEMO_NOW` the store holds a firing critical, a firing acknowledged error, a
silenced info, a pending warning, a resolved warning and a rule whose metric does
not exist (health `error`, instance `nodata`). Email works, Slack fails with read
timeouts and the webhook is rate limited, so the all-channels-down banner is off.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from atlas_tui.alerts.actions import acknowledge, create_silence
from atlas_tui.alerts.service import AlertService
from atlas_tui.config import Config
from atlas_tui.console.demo_analytics import demo_analytics_section
from collectors.base import Sample
from storage.alerts import list_alerts
from storage.metrics import write_samples
from storage.outbox import AttemptOutcome, ChannelUpdate, next_due, record_attempt

__all__ = ["DEMO_RULES", "build_demo_alerts", "demo_config"]

_FIRST_TICK = 1800.0
"""Seconds before `now` of the first evaluation, when most demo alerts fire."""
_SECOND_TICK = 30.0
"""Seconds before `now` of the latest evaluation."""
_MIB = 1024 * 1024

DEMO_RULES: tuple[dict[str, object], ...] = (
    {
        "id": "collector_down", "name": "Collector down", "condition": "collector_up == 0",
        "severity": "critical", "channels": ["email", "slack", "ops-webhook"],
        "annotations": {"summary": "A collector has stopped reporting",
                        "runbook_url": "https://runbooks.example.org/atlas/collector-down"},
    },
    {
        "id": "docker_disk", "name": "Docker volume almost full",
        "condition": 'disk_usage{mount="/var/lib/docker"} > 75', "severity": "error",
        "channels": ["email", "slack"],
        "annotations": {"summary": "Images and volumes fill /var/lib/docker",
                        "runbook_url": "https://runbooks.example.org/atlas/disk-full"},
    },
    {
        "id": "load_present", "name": "Load above 0.1", "condition": "load_1m > 0.1",
        "severity": "info", "channels": ["email"],
    },
    {
        "id": "memory_high", "name": "Memory above 40 % for 1 h", "condition": "memory_usage > 40",
        "severity": "warning", "for": "1h", "channels": ["email"],
    },
    {
        "id": "wal_large", "name": "Store WAL above 64 MiB", "condition": "store_wal_bytes > 67108864",
        "severity": "warning", "channels": ["email"],
    },
    {
        "id": "wallet_rpc_slow", "name": "Wallet RPC slow",
        "condition": "avg(wallet_rpc_latency_ms, 5m) > 500", "severity": "error", "channels": ["slack"],
    },
)
"""The demo's alert rules, in config-file form."""

_DEMO_CHANNELS: dict[str, object] = {
    "email": {"type": "email", "host": "smtp.example.org", "port": 587, "tls": "starttls",
              "username": "atlas", "password_env": "ATLAS_SMTP_PASSWORD",
              "from": "atlas@example.org", "to": ["oncall@example.org"]},
    "slack": {"type": "slack", "webhook_url_env": "ATLAS_SLACK_WEBHOOK_URL"},
    "ops-webhook": {"type": "webhook", "url": "https://hooks.example.org/atlas",
                    "secret_env": "ATLAS_WEBHOOK_SECRET", "format": "standard"},
}


def demo_config() -> Config:
    """Return the config of the demo: its rules, three channels (email, Slack, webhook) and the analytics app."""
    return Config.model_validate(
        {"alert_rules": list(DEMO_RULES), "channels": _DEMO_CHANNELS, "analytics": demo_analytics_section()}
    )


def build_demo_alerts(conn: sqlite3.Connection, data_dir: Path, now: float) -> None:
    """Evaluate the demo rules twice, acknowledge, silence and record deliveries up to `now`.

    Args:
        conn: Connection to the demo store, which already contains the metric samples.
        data_dir: The store's directory, for the alert service's own connection.
        now: The demo's fixed time.
    """
    config = demo_config()
    first, second = now - _FIRST_TICK, now - _SECOND_TICK
    write_samples(conn, list(_alert_samples(now)))

    service = AlertService(config, data_dir, statuses=list)
    try:
        service.evaluate_once(first)
        _deliver(conn, first + 5)
        acknowledge(conn, _alert_id(conn, "docker_disk"), by="alice", message="pruning old images",
                    now=now - 600, config=config)
        create_silence(conn, "rule=load_present", starts_at=now - 900, ends_at=now + 3600,
                       created_by="bob", comment="load test until 16:00 UTC")
        service.evaluate_once(second)
    finally:
        service.close()
    _deliver(conn, now - 20)


def _alert_samples(now: float) -> Iterator[Sample]:
    """Yield self-health series over the last hour: a collector that stopped, a WAL that shrank."""
    ts = now - 3600 + 2
    while ts < now:
        stopped = ts >= now - _FIRST_TICK - 120
        yield Sample.of("collector_up", 1.0, ts, collector="system")
        yield Sample.of("collector_up", 0.0 if stopped else 1.0, ts, collector="blockchain")
        yield Sample.of("store_wal_bytes", 6.0 * _MIB if ts > now - 1200 else 80.0 * _MIB, ts)
        ts += 60.0


def _alert_id(conn: sqlite3.Connection, rule_id: str) -> str:
    return next(alert.alert_id for alert in list_alerts(conn) if alert.rule_id == rule_id)


def _deliver(conn: sqlite3.Connection, at: float) -> None:
    """Record one attempt for every due notice: email delivers, Slack times out, the webhook gets 429."""
    while (row := next_due(conn, "email", at)) is not None:
        record_attempt(conn, row.id, "email", AttemptOutcome("delivered", "delivered", "250 OK from smtp.example.org:587",
                       latency_ms=180.0), ChannelUpdate("ok", success=True), now=at)
    for channel, outcome, update in _failures(at):
        seen: set[int] = set()
        while (row := next_due(conn, channel, at)) is not None and row.id not in seen:
            seen.add(row.id)
            record_attempt(conn, row.id, channel, outcome, update, now=at)


def _failures(at: float) -> list[tuple[str, AttemptOutcome, ChannelUpdate]]:
    slack_retry = at + 60
    webhook_retry = at + 45
    return [
        (
            "slack",
            AttemptOutcome("pending", "retry", "no answer from hooks.slack.com:443 within 10 s",
                           next_attempt_at=slack_retry, error_class="read_timeout"),
            ChannelUpdate("failing", success=False, next_retry_at=slack_retry),
        ),
        (
            "ops-webhook",
            AttemptOutcome("pending", "retry", "HTTP 429 from hooks.example.org:443, Retry-After 45",
                           next_attempt_at=webhook_retry, error_class="http_rate_limited", http_status=429),
            ChannelUpdate("degraded", success=False, next_retry_at=webhook_retry),
        ),
    ]
