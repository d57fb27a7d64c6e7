"""End to end against a real ganache node: collector, pipeline, store and an alert rule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_tui.alerts.service import AlertService
from atlas_tui.collection import CollectionPipeline
from atlas_tui.config import Config
from collectors.health import HEALTH_CODES
from storage.alerts import list_alerts
from storage.db import open_store
from storage.metrics import SeriesValue, latest
from tests.collectors.devnode import CHAIN_ID, DevNode, devnode

__all__ = ["devnode"]

pytestmark = pytest.mark.e2e

INTERVAL = 0.5
WAIT_LIMIT = 15.0


def devnode_config(url: str) -> Config:
    """Return a config that polls only the dev node, with a rule over node_up."""
    return Config.model_validate(
        {
            "collectors": {
                "system": {"enabled": False},
                "nodes": [
                    {
                        "name": "dev", "kind": "ethereum", "url": url, "interval": INTERVAL, "timeout": 0.4,
                        "chain": CHAIN_ID, "min_peers": 0, "max_head_age": "1h",
                    }
                ],
            },
            "alert_rules": [
                {"id": "node_down", "name": "Node down", "condition": 'node_up{node="dev"} == 0', "severity": "critical"}
            ],
        }
    )


async def wait_for(read: Callable[[], SeriesValue | None], accept: Callable[[SeriesValue], bool]) -> SeriesValue:
    """Poll `read` until its value passes `accept`, for at most `WAIT_LIMIT` seconds."""
    deadline = time.monotonic() + WAIT_LIMIT
    found = None
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(read)
        if found is not None and accept(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no accepted value within {WAIT_LIMIT:.0f}s; last value: {found}")


async def test_devnode_height_down_and_alert(devnode: DevNode, tmp_path: Path) -> None:
    """Mined blocks reach the store, a stopped node is down within two intervals, and the rule fires."""
    config = devnode_config(devnode.url)
    pipeline = CollectionPipeline(config, tmp_path)
    running = asyncio.create_task(pipeline.run())
    conn = open_store(tmp_path)

    def newest(name: str) -> Callable[[], SeriesValue | None]:
        def read() -> SeriesValue | None:
            values = latest(conn, name, {"node": "dev"})
            return values[0] if values else None
        return read

    service = AlertService(config, tmp_path)
    try:
        await wait_for(newest("node_block_height"), lambda value: value.value == 0)
        await asyncio.to_thread(devnode.mine, 3)
        height = await wait_for(newest("node_block_height"), lambda value: value.value == 3)
        health = await wait_for(newest("node_health"), lambda value: value.ts >= height.ts)
        service.evaluate_once(time.time())
        firing_while_up = list_alerts(conn, state="firing")

        await asyncio.to_thread(devnode.stop)
        stopped_at = time.time()
        down = await wait_for(newest("node_up"), lambda value: value.value == 0)
        down_health = await wait_for(newest("node_health"), lambda value: value.ts >= down.ts)
        service.evaluate_once(time.time())
        firing = list_alerts(conn, state="firing")
    finally:
        service.close()
        await pipeline.stop()
        await running
        conn.close()

    assert health.value == HEALTH_CODES["ok"]
    assert firing_while_up == []
    assert down.ts - stopped_at <= 2 * INTERVAL
    assert down_health.value == HEALTH_CODES["down"]
    assert [alert.rule_id for alert in firing] == ["node_down"]
    assert firing[0].labels["node"] == "dev"
