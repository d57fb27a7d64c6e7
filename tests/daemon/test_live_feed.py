"""`WS /ws` of a real `atlas daemon`: metric ticks from the collectors and alert transitions."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.daemon.conftest import DaemonProcess

pytestmark = pytest.mark.e2e

CONFIG = {
    "collectors": {"system": {"interval": "0.5s"}},
    "alerting": {"evaluation_interval": "0.5s"},
}


async def _next(client: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, object]:
    """Return the next message of type `kind` that is not a snapshot."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await client.recv())
            if message["type"] == kind and not message.get("snapshot"):
                return message


async def test_metric_ticks_and_alert_push(start_daemon: Callable[..., DaemonProcess]) -> None:
    """Collected samples arrive as ticks, and a rule added by SIGHUP pushes its firing event."""
    daemon = start_daemon(CONFIG)
    assert daemon.wait_for_log("daemon started"), daemon.log()
    url = f"ws://127.0.0.1:{daemon.port()}/ws"

    async with connect(url, additional_headers=daemon.headers()) as client:
        await client.send(json.dumps({"type": "subscribe", "topics": ["metrics", "alerts"]}))
        tick = await _next(client, "metrics")

        rule = {"id": "always_on", "condition": "cpu_usage >= 0", "severity": "info"}
        (daemon.data_dir.parent / "config.json").write_text(json.dumps({**CONFIG, "alert_rules": [rule]}))
        daemon.proc.send_signal(signal.SIGHUP)
        pushed = await _next(client, "alerts")

    assert "cpu_usage" in {sample["name"] for sample in tick["samples"]}
    assert [(e["rule_id"], e["kind"]) for e in pushed["events"]] == [("always_on", "firing")]
    assert pushed["alerts"][0]["state"] == "firing"
    code, _seconds = daemon.stop()
    assert code == 0, daemon.log()
