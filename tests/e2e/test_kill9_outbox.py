"""End to end: SIGKILL of `atlas daemon` neither loses nor repeats a notice.

The rule `uptime_seconds > 0` is true from the first evaluation, so the alert fires
as soon as the daemon starts. Its firing notice goes to two webhooks that cannot
take it yet:

- `refused` points at a port that refuses connections, so the POST never reaches
  anyone (the kill lands after the transition was recorded, before any POST);
- `flaky` responds with 503, so the receiver records a failed attempt and its
  `webhook-id`.

The daemon is killed with SIGKILL while both notices are pending, the receivers are
made healthy, and the daemon is started again on the same store. Each notice must
then arrive once, with the id of the first attempt, and the restart must not make
a second firing notice. Two further kills check the edges of the guarantee: a kill
after a delivery was committed re-sends nothing, and a kill between the receiver
reading the POST and the daemon committing the outcome re-sends the notice with the
same `webhook-id`, which is the documented at-least-once window.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_tui.alerts.channels.signing import verify_standard_webhook
from tests.e2e.channels import EVALUATION_INTERVAL, channel_env, daemon_config, webhook_channel
from tests.e2e.hooks import Hit, HookServer, reserve_port
from tests.e2e.processes import AtlasDaemon, poll, run_atlas
from tests.e2e.store_reads import OutboxEntry, alerts, last_tick, outbox, settle

pytestmark = pytest.mark.e2e

RULE = {
    "id": "daemon_up",
    "name": "Daemon up",
    "condition": "uptime_seconds > 0",
    "severity": "warning",
    "cooldown_min": 0,
    "channels": ["refused", "flaky"],
}
"""A rule true on every evaluation, with one series, so it fires at the daemon's first evaluation."""


def rule_rows(daemon: AtlasDaemon) -> list[OutboxEntry]:
    """Return the outbox rows of the rule's alert.

    A channel that was failing when the daemon stopped is still failing at the next
    start, so the internal `NotificationFailing` alert may fire and resolve there
    too. Its notices go to the other channel and are left out of the counts.
    """
    ids = {record.alert_id for record in alerts(daemon.data_dir) if record.rule_id == RULE["id"]}
    return [entry for entry in outbox(daemon.data_dir) if entry.alert_id in ids]


def rows(daemon: AtlasDaemon, channel: str, kind: str) -> list[OutboxEntry]:
    """Return the rule's outbox rows of one channel and notice kind."""
    return [entry for entry in rule_rows(daemon) if entry.channel == channel and entry.kind == kind]


def attempted(daemon: AtlasDaemon, channel: str) -> bool:
    """Return True once the channel's firing row exists and has at least one recorded attempt."""
    found = rows(daemon, channel, "firing")
    return bool(found) and found[0].attempts >= 1


def delivered(daemon: AtlasDaemon, kind: str) -> bool:
    """Return True once every row of `kind` exists on both channels and is delivered."""
    found = [entry for entry in rule_rows(daemon) if entry.kind == kind]
    return len(found) == 2 and all(entry.status == "delivered" for entry in found)


def firing_events(daemon: AtlasDaemon) -> int:
    """Return how many `firing` transitions the alert's history holds."""
    result = run_atlas("alerts", "history", "alert_1", "--json", "--data-dir", str(daemon.data_dir))
    assert result.returncode == 0, result.stderr
    return sum(1 for event in json.loads(result.stdout)["events"] if event["kind"] == "firing")


def ids(hits: list[Hit]) -> Counter[str | None]:
    """Count requests per `webhook-id`, leaving out the internal alerts' notices."""
    return Counter(hit.webhook_id for hit in rule_hits(hits))


def rule_hits(hits: list[Hit]) -> list[Hit]:
    """Return the requests that carry the rule's notices."""
    return [hit for hit in hits if hit.json()["data"]["alerts"][0]["rule_id"] == RULE["id"]]


def test_kill9_delivers_once(
    tmp_path: Path,
    launch: Callable[..., AtlasDaemon],
    hook_servers: Callable[..., HookServer],
    webhook_secret: str,
) -> None:
    """Notices pending at a SIGKILL arrive once after the restart, with their first id."""
    began = time.monotonic()
    holder = reserve_port()
    refused_port = holder.getsockname()[1]
    flaky = hook_servers(status=503)
    channels = {
        "refused": webhook_channel(f"http://127.0.0.1:{refused_port}/hook"),
        "flaky": webhook_channel(flaky.url),
    }
    config = daemon_config([RULE], channels)
    env = channel_env(webhook_secret=webhook_secret)

    # --- First run: fire, fail to deliver, SIGKILL. ----------------------------------
    first = launch(config, env=env)
    assert first.wait_started(), first.log()
    assert poll(lambda: attempted(first, "refused"), timeout=15.0), first.log()
    assert poll(lambda: attempted(first, "flaky"), timeout=15.0), first.log()
    first.kill9()

    refused_before = rows(first, "refused", "firing")
    flaky_before = rows(first, "flaky", "firing")
    assert [entry.status for entry in refused_before + flaky_before] == ["pending", "pending"]
    assert alerts(first.data_dir)[0].state == "firing"
    failed_hits = flaky.hits()
    assert {hit.status for hit in failed_hits} == {503}
    assert set(ids(failed_hits)) == {flaky_before[0].notice_id}

    # --- Second run: receivers healthy; each notice arrives once, same id. ------------
    holder.close()
    refused = hook_servers(port=refused_port)
    flaky.status = 200
    second = launch(config, env=env)
    assert second.wait_started(), second.log()
    assert poll(lambda: delivered(second, "firing"), timeout=20.0), second.log()
    assert settle(second.data_dir, ticks=2, interval=EVALUATION_INTERVAL), outbox(second.data_dir)

    refused_hits = refused.hits()
    assert ids(refused_hits) == Counter({refused_before[0].notice_id: 1})
    flaky_ok = [hit for hit in flaky.hits() if hit.status == 200]
    assert ids(flaky_ok) == Counter({flaky_before[0].notice_id: 1})
    for hit in refused.hits() + flaky.hits():
        assert verify_standard_webhook(webhook_secret, hit.headers, hit.body, now=hit.at) == hit.webhook_id
    # No second firing notice: the instance kept firing across the kill.
    assert len(rows(second, "refused", "firing")) == 1
    assert len(rows(second, "flaky", "firing")) == 1
    assert alerts(second.data_dir)[0].state == "firing"
    assert firing_events(second) == 1
    print(f"delivered after the restart at {time.monotonic() - began:.1f}s")

    # --- Third run: SIGKILL after the delivery was committed re-sends nothing. --------
    second.kill9()
    requests_before = len(rule_hits(refused.hits())) + len(rule_hits(flaky.hits()))
    third = launch(config, env=env)
    assert third.wait_started(), third.log()
    restarted_at = time.time()
    assert poll(lambda: (last_tick(third.data_dir) or 0.0) > restarted_at, timeout=10.0), third.log()
    assert settle(third.data_dir, ticks=2, interval=EVALUATION_INTERVAL), outbox(third.data_dir)
    assert len(rule_hits(refused.hits())) + len(rule_hits(flaky.hits())) == requests_before
    assert len(rule_rows(third)) == 2

    # --- Fourth run: SIGKILL between the POST and its commit re-sends the same id. ----
    def kill_daemon(hit: Hit) -> None:
        # Runs after the request was read and before the reply, so the daemon never learns the outcome.
        os.kill(third.pid, signal.SIGKILL)

    refused.before_reply = kill_daemon
    acked = run_atlas(
        "alerts", "ack", "alert_1", "-m", "kill window", "--data-dir", str(third.data_dir),
        "--config", str(tmp_path / "config.json"),
    )
    assert acked.returncode == 0, acked.stderr
    assert poll(lambda: third.proc.poll() is not None, timeout=15.0), third.log()
    refused.before_reply = None
    window_hits = [hit for hit in refused.hits() if hit.webhook_kind == "acknowledge"]
    assert len(window_hits) == 1
    assert [entry.status for entry in rows(third, "refused", "acknowledge")] == ["pending"]

    fourth = launch(config, env=env)
    assert fourth.wait_started(), fourth.log()
    assert poll(lambda: delivered(fourth, "acknowledge"), timeout=20.0), fourth.log()
    resent = [hit for hit in refused.hits() if hit.webhook_kind == "acknowledge"]
    assert ids(resent) == Counter({window_hits[0].webhook_id: 2})
    assert len(rows(fourth, "refused", "acknowledge")) == 1
    print(f"whole scenario {time.monotonic() - began:.1f}s")
