"""End to end: an alert whose condition turned false while the daemon was down resolves once.

The rule watches the host's real `process_count`, which the test raises with idle
`sleep` processes. The daemon fires and delivers, is stopped with SIGTERM, the
processes are killed while it is down, and the daemon is started again after more
than two evaluation intervals. The first evaluation after the start must resolve
the alert and send exactly one resolved notice per channel, marked `resolved during
downtime`, with `ends_at` set to that evaluation's time. The restart must not send
the firing notice again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.channels import (
    EVALUATION_INTERVAL,
    channel_env,
    daemon_config,
    slack_channel,
    slack_kinds,
    webhook_channel,
    webhook_kinds,
)
from tests.e2e.hooks import HookServer
from tests.e2e.processes import AtlasDaemon, Sleepers, poll, process_count, run_atlas
from tests.e2e.store_reads import alerts, last_tick, outbox, settle

pytestmark = pytest.mark.e2e

MARGIN = 40
"""Processes between the measured count and the rule's threshold, on either side."""

DOWNTIME_NOTE = "resolved during downtime"


def rule(threshold: int) -> dict[str, object]:
    """Return a rule that fires at the first evaluation above `threshold` processes."""
    return {
        "id": "process_surge",
        "condition": f"process_count > {threshold}",
        "severity": "error",
        "cooldown_min": 0,
        "channels": ["slack", "ops-webhook"],
    }


def state_of(daemon: AtlasDaemon) -> str | None:
    """Return the state of the rule's only instance, None before it exists."""
    records = alerts(daemon.data_dir)
    return records[0].state if records else None


def test_resolve_during_downtime(
    tmp_path: Path,
    launch: Callable[..., AtlasDaemon],
    sleepers: Sleepers,
    hook_servers: Callable[..., HookServer],
    webhook_secret: str,
) -> None:
    """A resolve that happened while the daemon was down sends one annotated resolved notice."""
    began = time.monotonic()
    slack = hook_servers()
    hook = hook_servers()
    threshold = process_count() + MARGIN
    config = daemon_config(
        [rule(threshold)], {"slack": slack_channel(), "ops-webhook": webhook_channel(hook.url)}
    )
    env = channel_env(slack_url=slack.url, webhook_secret=webhook_secret)

    # --- First run: fire and deliver, then stop with SIGTERM. ------------------------
    first = launch(config, env=env)
    assert first.wait_started(), first.log()
    assert poll(lambda: last_tick(first.data_dir) is not None, timeout=10.0), first.log()
    assert state_of(first) is None, f"process_count crossed {threshold} before the test started processes"
    sleepers.spawn(2 * MARGIN)
    assert poll(lambda: state_of(first) == "firing", timeout=15.0), first.log()
    assert settle(first.data_dir, ticks=1, interval=EVALUATION_INTERVAL), outbox(first.data_dir)
    assert first.stop() == 0, first.log()
    last_eval = alerts(first.data_dir)[0].last_eval
    assert last_eval is not None

    # --- Downtime: the condition turns false; more than two intervals pass. ----------
    sleepers.kill()
    assert poll(lambda: process_count() <= threshold - MARGIN // 2, timeout=10.0)
    assert poll(lambda: time.time() - last_eval > 2.5 * EVALUATION_INTERVAL, timeout=10.0)

    # --- Second run: one resolved notice per channel, marked as during downtime. -----
    second = launch(config, env=env)
    assert second.wait_started(), second.log()
    assert poll(lambda: state_of(second) == "resolved", timeout=15.0), second.log()
    assert settle(second.data_dir, ticks=2, interval=EVALUATION_INTERVAL), outbox(second.data_dir)

    assert webhook_kinds(hook.hits()) == Counter({"firing": 1, "resolved": 1})
    assert slack_kinds(slack.hits()) == Counter({"FIRING": 1, "RESOLVED": 1})
    resolved_notice = hook.hits()[1].json()["data"]["alerts"][0]
    record = alerts(second.data_dir)[0]
    assert resolved_notice["note"] == DOWNTIME_NOTE
    assert resolved_notice["ends_at"] == record.resolved_at
    assert resolved_notice["ends_at"] >= second.started_at
    assert DOWNTIME_NOTE.encode() in slack.hits()[1].body

    history = run_atlas("alerts", "history", record.alert_id, "--json", "--data-dir", str(second.data_dir))
    assert history.returncode == 0, history.stderr
    events = json.loads(history.stdout)["events"]
    assert [(event["kind"], event["message"]) for event in events] == [("firing", None), ("resolved", DOWNTIME_NOTE)]
    print(f"whole scenario {time.monotonic() - began:.1f}s")
