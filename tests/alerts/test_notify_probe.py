"""`atlas notify test <channel>`: a labelled test message with latency and response."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator

import pytest

from atlas_tui.alerts.channels.models import EmailChannel, SlackChannel, WebhookChannel
from atlas_tui.alerts.channels.probe import build_test_notice, describe_result, send_test
from atlas_tui.alerts.channels.result import ErrorClass
from tests.alerts.receivers import HttpReceiver, Reply, SmtpRecorder, running_smtp

NOW = 1736846000.0


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """An HTTP receiver returning 200 `ok`."""
    with HttpReceiver() as running:
        yield running


def _slack(monkeypatch: pytest.MonkeyPatch, url: str) -> SlackChannel:
    monkeypatch.setenv("ATLAS_TEST_SLACK_URL", url)
    return SlackChannel.model_validate({"type": "slack", "webhook_url_env": "ATLAS_TEST_SLACK_URL"})


async def test_slack_test_labelled(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Slack test message reads `[TEST] ATLAS notification test from <host>`."""
    result = await send_test("slack", _slack(monkeypatch, receiver.url), now=NOW, host="atlas-01")
    payload = json.loads(receiver.requests[0].body)
    assert result.ok
    assert payload["text"] == "[TEST] ATLAS notification test from atlas-01"
    assert "TEST" in payload["blocks"][0]["text"]["text"]


async def test_reports_latency_and_response(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The result carries latency, HTTP status and response body, and the summary prints them."""
    result = await send_test("slack", _slack(monkeypatch, receiver.url), now=NOW, host="atlas-01")
    summary = describe_result("slack", result)
    assert result.latency_ms > 0
    assert result.http_status == 200
    assert summary.startswith("slack: delivered in ")
    assert "response: ok" in summary


async def test_failure_summary_names_error(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing test prints the status, the error class and the receiver's response."""
    receiver.script(Reply(status=404, body=b"no_service"))
    result = await send_test("slack", _slack(monkeypatch, receiver.url), now=NOW, host="atlas-01")
    summary = describe_result("slack", result)
    assert result.error_class is ErrorClass.HTTP_NOT_FOUND
    assert "misconfigured: http_not_found" in summary
    assert "response: no_service" in summary


async def test_webhook_test_event(receiver: HttpReceiver) -> None:
    """A webhook receives an `alert.test` event with a fresh notice id."""
    config = WebhookChannel.model_validate({"type": "webhook", "url": receiver.url})
    await send_test("hook", config, now=NOW, host="atlas-01")
    body = json.loads(receiver.requests[0].body)
    assert body["type"] == "alert.test"
    assert receiver.requests[0].headers["webhook-id"].startswith("test-")


async def test_email_test_labelled() -> None:
    """The email test has the labelled subject and the SMTP server's reply as its response."""
    recorder = SmtpRecorder()
    with running_smtp(recorder, "plain") as port:
        config = EmailChannel.model_validate({"type": "email", "host": "127.0.0.1", "port": port, "tls": "none",
                                              "from": "atlas@example.org", "to": ["oncall@example.org"]})
        result = await send_test("email", config, now=NOW, host="atlas-01")
    message = email.message_from_bytes(recorder.messages[0].data)
    assert message["Subject"] == "[TEST] ATLAS notification test from atlas-01"
    assert result.response_body == "250 2.0.0 OK queued as atlas-test-1"


def test_test_notices_have_unique_ids() -> None:
    """Two test notices never share an idempotency key."""
    assert build_test_notice("h", now=NOW).notice_id != build_test_notice("h", now=NOW).notice_id
