"""Test notices for `atlas notify test <channel>`: send one clearly labelled message.

The CLI calls `send_test` and prints `describe_result`. The test notice goes through
the same `dispatch.send` path as real notices (same payload builders, signatures,
TLS settings and error classes), so a passing test means real notices will pass too.
It is labelled `[TEST] ATLAS notification test from <host>` in every format.
"""

from __future__ import annotations

import socket
import time
import uuid

import httpx

from atlas_tui.alerts.channels.dispatch import send
from atlas_tui.alerts.channels.message import Annotations, Notice
from atlas_tui.alerts.channels.models import ChannelConfig
from atlas_tui.alerts.channels.result import DeliveryResult

__all__ = ["TEST_RULE_ID", "build_test_notice", "describe_result", "send_test"]

TEST_RULE_ID = "atlas_notification_test"
"""Rule id carried by test notices, so receivers can filter them out."""


async def send_test(
    channel_name: str,
    cfg: ChannelConfig,
    *,
    now: float | None = None,
    host: str | None = None,
    client: httpx.AsyncClient | None = None,
) -> DeliveryResult:
    """Send a labelled test notice to one channel and return the outcome with its latency.

    Args:
        channel_name: The channel's key in the config.
        cfg: The channel's config.
        now: UTC epoch seconds; None reads the clock, as a one-shot CLI command may.
        host: Host name shown in the message; None uses this machine's name.
        client: HTTP client to reuse; None opens one.
    """
    moment = time.time() if now is None else now
    notice = build_test_notice(host or socket.gethostname(), now=moment)
    return await send(channel_name, cfg, notice, now=moment, client=client)


def build_test_notice(host: str, *, now: float) -> Notice:
    """Build the test notice: kind `test`, severity info, a fresh `notice_id`."""
    return Notice(
        notice_id=f"test-{uuid.uuid4().hex}",
        kind="test",
        rule_id=TEST_RULE_ID,
        rule_name=f"ATLAS notification test from {host}",
        fingerprint="0" * 16,
        incident_id="test",
        severity="info",
        labels={"host": host},
        annotations=Annotations(summary="A test message; no alert is firing."),
        starts_at=now,
        created_at=now,
    )


def describe_result(channel_name: str, result: DeliveryResult) -> str:
    """Format a result for the terminal: outcome, latency, error class and response."""
    outcome = "delivered" if result.ok else f"{result.status}: {result.error_class}"
    lines = [f"{channel_name}: {outcome} in {result.latency_ms:.0f} ms", result.message]
    if result.http_status is not None:
        lines.append(f"HTTP status: {result.http_status}")
    if result.retry_after is not None:
        lines.append(f"Retry-After: {result.retry_after:g} s")
    if result.response_body:
        lines.append(f"response: {result.response_body}")
    return "\n".join(line for line in lines if line)
