"""Demo analytics events for screenshots and snapshot tests, stored by the real ingest code.

`demo_store.build_demo_store` calls `build_demo_analytics` after the metric samples.
The SDK twin (`atlas_tui.analytics.simulator.generate`) plans six days of a few
devices on two releases, with crashes and skewed clocks. Each planned batch then
goes through `decode_batch`, `prepare_batch` and `store_batch` at its send time, as
`POST /api/analytics/events` would run them. A few batches are sent twice and one
carries invalid events, so the ingest view shows duplicates and rejections. Finally
`atlas_tui.analytics.rollups.refresh` derives sessions and hourly rollups, which the
reports read. No network is used and the result depends only on `now`.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

from atlas_tui.analytics.config import AnalyticsConfig
from atlas_tui.analytics.ingest import decode_batch, prepare_batch, store_batch
from atlas_tui.analytics.privacy import Pseudonymizer
from atlas_tui.analytics.rollups import refresh
from atlas_tui.analytics.simulator import BatchPlan, SimulatorConfig, generate

__all__ = ["DEMO_APP", "DEMO_INGEST_KEY", "build_demo_analytics", "demo_analytics_section"]

DEMO_APP = "atlas-wallet"
"""App id of the demo events."""

DEMO_INGEST_KEY = "pk_atlas_wallet_demo"
"""Ingest key of the demo app; public, as every ingest key is."""

_DEMO_SECRET = b"atlas-demo-pseudonym-secret-0000"
"""Fixed host secret, so demo pseudonyms are the same in every build; never used outside the demo."""

_DEVICES = 12
_DAYS = 6.0
_SEED = 20250615
_RESENT_EVERY = 9
"""Every ninth batch is delivered twice, as after a response lost on the way back."""
_CLIENT_IP = "127.0.0.1"


def demo_analytics_section() -> dict[str, Any]:
    """Return the `analytics` config section of the demo: one app with its ingest key."""
    return {"apps": {DEMO_APP: {"ingest_key": DEMO_INGEST_KEY}}, "timezone": "UTC"}


def build_demo_analytics(conn: sqlite3.Connection, now: float) -> None:
    """Ingest six days of simulated SDK batches ending at `now`, then refresh sessions and rollups."""
    config = AnalyticsConfig.model_validate(demo_analytics_section())
    pseudonymizer = Pseudonymizer(_DEMO_SECRET)
    plan = generate(SimulatorConfig(devices=_DEVICES, days=_DAYS, end=now, seed=_SEED))
    for index, batch in enumerate(plan.batches):
        events = list(batch.events)
        if index == len(plan.batches) // 2:
            events.extend(_invalid_events(batch))
        sends = 2 if index % _RESENT_EVERY == 0 else 1
        for attempt in range(sends):
            # The simulator may plan a flush a few minutes past `end`; the demo store
            # must not hold receipts later than its own `now`.
            received_at = min(batch.send_time + 2.0 + attempt * 30.0, now - 5.0 + attempt)
            _ingest(conn, config, pseudonymizer, batch, events, received_at)
    refresh(conn)


def _ingest(
    conn: sqlite3.Connection,
    config: AnalyticsConfig,
    pseudonymizer: Pseudonymizer,
    batch: BatchPlan,
    events: list[dict[str, Any]],
    received_at: float,
) -> None:
    sent_at = datetime.fromtimestamp(received_at - 1.0 + batch.clock_offset, UTC).isoformat()
    body = json.dumps({"schema": 1, "sent_at": sent_at, "events": events}).encode("utf-8")
    envelope = decode_batch(body)
    prepared = prepare_batch(
        envelope, app_id=DEMO_APP, config=config, pseudonymizer=pseudonymizer, client_ip=_CLIENT_IP, now=received_at
    )
    store_batch(conn, prepared, received_at)


def _invalid_events(batch: BatchPlan) -> list[dict[str, Any]]:
    """Return two events a buggy SDK build might send: one without an id and one of another app."""
    template = dict(batch.events[0])
    missing_id = {key: value for key, value in template.items() if key != "event_id"}
    other_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"atlas-demo/{template.get('event_id')}"))
    other_app = {**template, "event_id": other_id, "app_id": "unknown-app"}
    return [missing_id, other_app]
