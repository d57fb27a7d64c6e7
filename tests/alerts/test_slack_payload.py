"""Slack messages: text plus blocks within Slack's limits, escaping, and delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from atlas_tui.alerts.channels.dispatch import send
from atlas_tui.alerts.channels.message import Annotations, NoticeGroup, as_group
from atlas_tui.alerts.channels.models import SlackChannel
from atlas_tui.alerts.channels.result import DeliveryStatus, ErrorClass
from atlas_tui.alerts.channels.slack import (
    HEADER_TEXT_LIMIT,
    MAX_BLOCKS,
    SECTION_TEXT_LIMIT,
    build_slack_message,
    truncate_text,
)
from tests.alerts.receivers import HttpReceiver, Reply, sample_notice

NOW = 1736846000.0


def _group(count: int) -> NoticeGroup:
    notices = [
        sample_notice(notice_id=f"n{i}", fingerprint=f"{i:016x}", labels={"host": "atlas-01", "mount": f"/m{i}"})
        for i in range(count)
    ]
    return NoticeGroup(notice_id="grp", group_labels={"alertname": "high_cpu"}, notices=notices)


def _section_texts(payload: dict[str, object]) -> list[str]:
    blocks = payload["blocks"]
    assert isinstance(blocks, list)
    return [block["text"]["text"] for block in blocks if block["type"] == "section"]


def test_text_and_blocks_present() -> None:
    """A message carries fallback text and header, section and context blocks."""
    payload = build_slack_message(as_group(sample_notice())).model_dump()
    assert payload["text"] == "[FIRING] High CPU Usage on atlas-01 (critical)"
    assert [block["type"] for block in payload["blocks"]] == ["header", "section", "context"]


def test_section_shows_facts() -> None:
    """The alert's section lists host, value, start time and runbook link."""
    text = _section_texts(build_slack_message(as_group(sample_notice())).model_dump())[0]
    assert "*Host:* atlas-01" in text
    assert "*Value:* 93.4" in text
    assert "*Since:* 2025-01-14 09:12 UTC" in text
    assert "<https://wiki.example/runbooks/cpu|open the runbook>" in text


def test_long_section_truncated() -> None:
    """A section longer than 3000 characters is cut and marked with the count removed."""
    notice = sample_notice(annotations=Annotations(summary="x" * 5000))
    text = _section_texts(build_slack_message(as_group(notice)).model_dump())[0]
    assert len(text) <= SECTION_TEXT_LIMIT
    assert text.endswith(")")
    assert "…(+" in text


def test_truncation_counts_removed_characters() -> None:
    """The `…(+N)` marker states how many characters were dropped."""
    text = "a" * 3100
    cut = truncate_text(text, SECTION_TEXT_LIMIT)
    kept = cut.index("…")
    assert cut == f"{'a' * kept}…(+{3100 - kept})"


def test_truncation_keeps_escapes_whole() -> None:
    """A cut never leaves half of an escape such as `&amp;`."""
    cut = truncate_text("abc&amp;defghij", 11)
    assert cut.startswith("abc…")


def test_long_header_truncated() -> None:
    """A header longer than 150 characters is cut."""
    payload = build_slack_message(as_group(sample_notice(rule_name="R" * 400))).model_dump()
    assert len(payload["blocks"][0]["text"]["text"]) <= HEADER_TEXT_LIMIT


@pytest.mark.parametrize("count", [1, 20, 21, 500])
def test_block_count_within_limit(count: int) -> None:
    """No message has more than 50 blocks, whatever the group size."""
    payload = build_slack_message(_group(count)).model_dump()
    assert len(payload["blocks"]) <= MAX_BLOCKS


def test_twenty_alerts_detailed() -> None:
    """A group of 20 alerts gets one section per alert."""
    assert len(_section_texts(build_slack_message(_group(20)).model_dump())) == 20


def test_large_group_summarised() -> None:
    """A group of more than 20 alerts is one summary section plus an "N more" line."""
    payload = build_slack_message(_group(35)).model_dump()
    sections = _section_texts(payload)
    contexts = [block["elements"][0]["text"] for block in payload["blocks"] if block["type"] == "context"]
    assert len(sections) == 1
    assert sections[0].count("•") == 20
    assert "15 more alerts" in contexts[0]


def test_label_values_escaped() -> None:
    """`&`, `<` and `>` in labels and names are escaped, so `<!channel>` cannot ping."""
    notice = sample_notice(rule_name="Disk <!channel>", labels={"host": "a&b", "mount": "<!here>"})
    encoded = build_slack_message(as_group(notice)).model_dump_json()
    assert "<!channel>" not in encoded
    assert "<!here>" not in encoded
    assert "&lt;!channel&gt;" in encoded
    assert "a&amp;b" in encoded


def test_annotations_escaped() -> None:
    """Summaries and notes from rules are escaped too."""
    notice = sample_notice(annotations=Annotations(summary="x < y & z > w"), note="<@U123>")
    text = _section_texts(build_slack_message(as_group(notice)).model_dump())[0]
    assert "x &lt; y &amp; z &gt; w" in text
    assert "<@U123>" not in text


def test_runbook_link_cannot_break_out() -> None:
    """A `|` or `>` in a runbook URL cannot end the Slack link early."""
    notice = sample_notice(annotations=Annotations(runbook_url="https://w.example/a|<!channel>"))
    text = _section_texts(build_slack_message(as_group(notice)).model_dump())[0]
    assert "<!channel>" not in text
    assert "%7C" in text


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A Slack-like receiver returning 200 `ok`."""
    with HttpReceiver() as running:
        yield running


def _slack(monkeypatch: pytest.MonkeyPatch, url: str, **extra: object) -> SlackChannel:
    monkeypatch.setenv("ATLAS_TEST_SLACK_URL", url)
    return SlackChannel.model_validate({"type": "slack", "webhook_url_env": "ATLAS_TEST_SLACK_URL", **extra})


async def test_slack_delivered(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200 `ok` response is a delivery, and the body posted is the built message."""
    result = await send("slack", _slack(monkeypatch, receiver.url), sample_notice(), now=NOW)
    assert result.status is DeliveryStatus.DELIVERED
    assert result.response_body == "ok"
    assert json.loads(receiver.requests[0].body)["text"].startswith("[FIRING]")
    assert receiver.requests[0].headers["content-type"] == "application/json"


async def test_slack_rate_limited(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """429 with `Retry-After: 3` is a retry no sooner than 3 s."""
    receiver.script(Reply(status=429, body=b"rate_limited", headers={"Retry-After": "3"}))
    result = await send("slack", _slack(monkeypatch, receiver.url), sample_notice(), now=NOW)
    assert result.status is DeliveryStatus.RETRY
    assert result.error_class is ErrorClass.HTTP_RATE_LIMITED
    assert result.retry_after == 3.0


async def test_slack_invalid_payload(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack's 400 `invalid_payload` marks the channel misconfigured and keeps the body."""
    receiver.script(Reply(status=400, body=b"invalid_payload"))
    result = await send("slack", _slack(monkeypatch, receiver.url), sample_notice(), now=NOW)
    assert result.status is DeliveryStatus.MISCONFIGURED
    assert result.response_body == "invalid_payload"


async def test_slack_missing_url_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset webhook variable is a misconfiguration naming the variable."""
    monkeypatch.delenv("ATLAS_TEST_SLACK_MISSING", raising=False)
    config = SlackChannel.model_validate({"type": "slack", "webhook_url_env": "ATLAS_TEST_SLACK_MISSING"})
    result = await send("slack", config, sample_notice(), now=NOW)
    assert result.status is DeliveryStatus.MISCONFIGURED
    assert result.error_class is ErrorClass.SECRET_MISSING
    assert result.message == "channel slack: environment variable ATLAS_TEST_SLACK_MISSING is not set"


async def test_slack_url_not_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable holding something other than a URL is reported without echoing it."""
    result = await send("slack", _slack(monkeypatch, "xoxb-not-a-url"), sample_notice(), now=NOW)
    assert result.error_class is ErrorClass.INVALID_URL
    assert "xoxb" not in result.message
