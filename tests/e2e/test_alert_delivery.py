"""End to end: a rule on real collected data fires, is acknowledged twice and resolves.

`atlas daemon` runs as a subprocess with the system collector every 0.5 s and
rule evaluation every second. Its rule watches `process_count`, which the test
moves for real: it starts idle `sleep` processes to push the host's count above
the threshold and kills them to bring it back. The threshold sits `MARGIN`
processes above the count measured before the start and the test adds
`2 * MARGIN`, so other activity on the host would have to start or end about
`MARGIN` processes within the test to change the outcome.

The notices go to a real aiosmtpd server (STARTTLS and AUTH), a Slack stand-in
and a Standard Webhooks receiver on 127.0.0.1. Every channel must get exactly
one firing and one resolved notice, and the webhook signatures must verify against
the raw body. Acknowledgements made through the CLI and then the API must show in
`atlas alerts list --json` and in the alert's history.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from atlas_tui.alerts.channels.errors import WebhookVerificationError
from atlas_tui.alerts.channels.signing import verify_standard_webhook
from tests.api_tokens import daemon_headers
from tests.e2e.channels import (
    EVALUATION_INTERVAL,
    Smtp,
    channel_env,
    daemon_config,
    email_channel,
    mail_kinds,
    mails,
    slack_channel,
    slack_kinds,
    webhook_channel,
    webhook_kinds,
)
from tests.e2e.hooks import Hit, HookServer
from tests.e2e.processes import OPERATOR, AtlasDaemon, Sleepers, poll, process_count, run_atlas
from tests.e2e.store_reads import alerts, last_tick, outbox, settle

pytestmark = pytest.mark.e2e

MARGIN = 40
"""Processes between the measured count and the rule's threshold, on either side."""

RULE_ID = "process_surge"
CLI_MESSAGE = "looking at the process leak"
API_MESSAGE = "paged from the runbook script"


def surge_rule(threshold: int) -> dict[str, object]:
    """Return the rule under test: pending for one evaluation, then firing, on three channels."""
    return {
        "id": RULE_ID,
        "name": "Process surge",
        "condition": f"process_count > {threshold}",
        "severity": "critical",
        "for": "1s",
        "cooldown_min": 0,
        "channels": ["email", "slack", "ops-webhook"],
        "annotations": {"summary": "Many more processes than usual"},
    }


def alerts_list(daemon: AtlasDaemon) -> list[dict[str, object]]:
    """Return `atlas alerts list --json --all` for the daemon's data directory."""
    result = run_atlas("alerts", "list", "--json", "--all", "--data-dir", str(daemon.data_dir))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def listed(daemon: AtlasDaemon, alert_id: str) -> dict[str, object]:
    """Return one alert as `atlas alerts list --json` shows it."""
    matches = [item for item in alerts_list(daemon) if item["alert_id"] == alert_id]
    assert len(matches) == 1, matches
    return matches[0]


def state_of(daemon: AtlasDaemon) -> str | None:
    """Return the state of the rule's only instance in the store, None before it exists."""
    records = [record for record in alerts(daemon.data_dir) if record.rule_id == RULE_ID]
    return records[0].state if records else None


def verify_all(hits: list[Hit], secret: str) -> list[str]:
    """Verify every webhook request's Standard Webhooks signature and return the ids."""
    return [verify_standard_webhook(secret, hit.headers, hit.body, now=hit.at) for hit in hits]


def test_notices_exactly_once_per_channel(
    tmp_path: Path,
    launch: Callable[..., AtlasDaemon],
    sleepers: Sleepers,
    smtp: Smtp,
    hook_servers: Callable[..., HookServer],
    webhook_secret: str,
) -> None:
    """Firing, two acknowledgements and the resolve reach each channel exactly once."""
    began = time.monotonic()
    slack = hook_servers()
    hook = hook_servers()
    threshold = process_count() + MARGIN
    config = daemon_config(
        [surge_rule(threshold)],
        {"email": email_channel(smtp), "slack": slack_channel(), "ops-webhook": webhook_channel(hook.url)},
    )
    env = channel_env(smtp_password=smtp.password, slack_url=slack.url, webhook_secret=webhook_secret)
    daemon = launch(config, env=env, api=True)
    assert daemon.wait_started(), daemon.log()
    config_path = str(tmp_path / "config.json")
    data_dir = str(daemon.data_dir)

    # --- Before the surge: the rule evaluates and nothing fires. ---------------------
    assert poll(lambda: last_tick(daemon.data_dir) is not None, timeout=10.0), daemon.log()
    assert state_of(daemon) is None, f"process_count crossed {threshold} before the test started processes"

    # --- Surge: pending, then firing; one firing notice per channel. -----------------
    sleepers.spawn(2 * MARGIN)
    assert poll(lambda: state_of(daemon) == "firing", timeout=15.0), daemon.log()
    alert_id = alerts(daemon.data_dir)[0].alert_id
    assert settle(daemon.data_dir, ticks=2, interval=EVALUATION_INTERVAL), outbox(daemon.data_dir)

    assert mail_kinds(smtp) == Counter({"FIRING": 1})
    assert slack_kinds(slack.hits()) == Counter({"FIRING": 1})
    assert webhook_kinds(hook.hits()) == Counter({"firing": 1})
    assert smtp.recorder.messages[0].authenticated_as == "atlas"
    print(f"fired and delivered after {time.monotonic() - began:.1f}s")

    # --- Acknowledge through the CLI, remove it, acknowledge through the API. --------
    acked = run_atlas("alerts", "ack", alert_id, "-m", CLI_MESSAGE, "--data-dir", data_dir, "--config", config_path)
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.strip() == f"{alert_id} acknowledged by {OPERATOR}"
    after_cli = listed(daemon, alert_id)
    assert after_cli["ack_by"] == OPERATOR
    assert after_cli["ack_message"] == CLI_MESSAGE

    unacked = run_atlas("alerts", "unack", alert_id, "--data-dir", data_dir, "--config", config_path)
    assert unacked.returncode == 0, unacked.stderr
    assert listed(daemon, alert_id)["ack_by"] is None

    response = httpx.post(
        f"http://127.0.0.1:{daemon.port()}/api/alerts/ack/{alert_id}",
        json={"message": API_MESSAGE},
        headers=daemon_headers(daemon.data_dir),
        timeout=10.0,
    )
    assert response.status_code == 200, response.text
    after_api = listed(daemon, alert_id)
    assert after_api["ack_by"] == "api:local"
    assert after_api["ack_message"] == API_MESSAGE
    assert after_api["state"] == "firing"

    # --- Condition false: one resolved notice per channel, then silence. -------------
    sleepers.kill()
    assert poll(lambda: state_of(daemon) == "resolved", timeout=15.0), daemon.log()
    assert settle(daemon.data_dir, ticks=3, interval=EVALUATION_INTERVAL), outbox(daemon.data_dir)

    assert mail_kinds(smtp) == Counter({"FIRING": 1, "RESOLVED": 1})
    assert slack_kinds(slack.hits()) == Counter({"FIRING": 1, "RESOLVED": 1})
    # Webhooks also get one acknowledge notice per acknowledgement; Slack and email do not.
    assert webhook_kinds(hook.hits()) == Counter({"firing": 1, "acknowledge": 2, "resolved": 1})
    assert listed(daemon, alert_id)["state"] == "resolved"

    # --- Receiver side: ids, signatures, statuses. -----------------------------------
    webhook_ids = verify_all(hook.hits(), webhook_secret)
    stored_ids = {entry.notice_id for entry in outbox(daemon.data_dir) if entry.channel == "ops-webhook"}
    assert len(set(webhook_ids)) == 4
    assert set(webhook_ids) == stored_ids
    assert {hit.status for hit in hook.hits() + slack.hits()} == {200}
    mail_ids = [str(message["X-Atlas-Notice-Id"]) for message in mails(smtp)]
    assert len(set(mail_ids)) == 2
    firing_hit = hook.hits()[0]
    tampered = firing_hit.body.replace(b'"firing"', b'"resolved"', 1)
    with pytest.raises(WebhookVerificationError):
        verify_standard_webhook(webhook_secret, firing_hit.headers, tampered, now=firing_hit.at)

    # --- History: every transition with its actor. -----------------------------------
    history = run_atlas("alerts", "history", alert_id, "--json", "--data-dir", data_dir)
    assert history.returncode == 0, history.stderr
    view = json.loads(history.stdout)
    events = [(event["kind"], event["actor"]) for event in view["events"]]
    assert events == [
        ("pending", "engine"),
        ("firing", "engine"),
        ("acknowledged", OPERATOR),
        ("unacknowledged", OPERATOR),
        ("acknowledged", "api:local"),
        ("resolved", "engine"),
    ]
    messages = {event["actor"]: event["message"] for event in view["events"] if event["kind"] == "acknowledged"}
    assert messages == {OPERATOR: CLI_MESSAGE, "api:local": API_MESSAGE}
    skipped = {(d["channel"], d["kind"]) for d in view["deliveries"] if d["status"] == "skipped"}
    others = {d["status"] for d in view["deliveries"] if d["status"] != "skipped"}
    # Email and Slack take no acknowledge notices, so the sender records them as skipped.
    assert skipped == {("email", "acknowledge"), ("slack", "acknowledge")}
    assert others == {"delivered"}
    print(f"whole scenario {time.monotonic() - began:.1f}s")
