"""Exactly-once storage of resent events: every way an SDK retry can deliver an event twice."""

from __future__ import annotations

import copy
import random
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

from atlas_tui.analytics.config import AnalyticsConfig
from atlas_tui.analytics.ingest import decode_batch, prepare_batch, store_batch
from atlas_tui.analytics.privacy import Pseudonymizer, load_host_secret
from storage.db import DB_FILENAME, connect
from storage.events import count_events, counter_key, read_counters
from tests.analytics.conftest import APP_ID, AUTH, INGEST_KEY, NOW, Clock, make_batch, make_event

URL = "/api/analytics/events"


def _events(count: int) -> list[dict[str, Any]]:
    kinds = ["screen_view", "user_interaction", "transaction", "performance_metric", "error"]
    return [make_event(kinds[index % len(kinds)], client_ts=NOW - 300 + index) for index in range(count)]


def _statuses(response: httpx.Response) -> list[str]:
    return [entry["status"] for entry in response.json()["events"]]


def _stored(data_dir: Path) -> int:
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        return count_events(conn, APP_ID)


async def test_resend_all_duplicate(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A batch sent twice is stored once and the second response reports every event duplicate."""
    batch = make_batch(_events(50))

    first = await client.post(URL, json=batch, headers=AUTH)
    second = await client.post(URL, json=batch, headers=AUTH)

    assert _statuses(first) == ["accepted"] * 50
    assert _statuses(second) == ["duplicate"] * 50
    assert second.json()["duplicate"] == 50
    assert _stored(data_dir) == 50


async def test_dropped_response_resend(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A batch committed without a response (connection dropped) is all duplicate when resent."""
    batch = make_batch(_events(50))
    config = AnalyticsConfig.model_validate({"apps": {APP_ID: {"ingest_key": INGEST_KEY}}})
    pseudonymizer = Pseudonymizer(load_host_secret(data_dir))
    envelope = decode_batch(httpx.Request("POST", "http://x", json=batch).content)
    prepared = prepare_batch(envelope, app_id=APP_ID, config=config, pseudonymizer=pseudonymizer, client_ip=None, now=NOW)
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        store_batch(conn, prepared, NOW)  # The response is lost, as when the connection drops.

    resent = await client.post(URL, json=batch, headers=AUTH)

    assert _statuses(resent) == ["duplicate"] * 50
    assert _stored(data_dir) == 50


async def test_br12_retry_variants(client: httpx.AsyncClient, data_dir: Path, clock: Clock) -> None:
    """BR-12: resend, resend 26 h later and an overlapping batch in another order store 90 distinct events."""
    b1_events = _events(50)
    b1 = make_batch(b1_events)
    b2_events = list(reversed(b1_events[:10])) + _events(40)
    random.Random(7).shuffle(b2_events)

    await client.post(URL, json=b1, headers=AUTH)
    resend = await client.post(URL, json=b1, headers=AUTH)
    clock.now = NOW + 26 * 3600
    late = await client.post(URL, json=b1, headers=AUTH)
    overlap = await client.post(URL, json=make_batch(b2_events, sent_at=clock.now), headers=AUTH)

    assert resend.json()["duplicate"] == 50
    assert late.json()["duplicate"] == 50
    assert (overlap.json()["accepted"], overlap.json()["duplicate"]) == (40, 10)
    assert _stored(data_dir) == 90
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        counters = read_counters(conn)
    assert counters[counter_key("events_accepted", app=APP_ID)] == 90


async def test_same_id_inside_batch(client: httpx.AsyncClient, data_dir: Path) -> None:
    """An event repeated inside one batch is stored once and its copy reported duplicate."""
    event = make_event()

    response = await client.post(URL, json=make_batch([event, copy.deepcopy(event)]), headers=AUTH)

    assert _statuses(response) == ["accepted", "duplicate"]
    assert _stored(data_dir) == 1


async def test_conflict_quarantined(client: httpx.AsyncClient, data_dir: Path) -> None:
    """An event id reused with other content keeps the first copy, counts a conflict and quarantines the second."""
    first = make_event("screen_view", screen="send")
    second = dict(first, screen="receive")

    await client.post(URL, json=make_batch([first]), headers=AUTH)
    response = await client.post(URL, json=make_batch([second]), headers=AUTH)

    entry = response.json()["events"][0]
    assert (entry["status"], entry["reason"]) == ("rejected", "dedup_conflict")
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        attrs = conn.execute("SELECT attrs FROM analytics_events").fetchone()[0]
        quarantined = conn.execute("SELECT event FROM analytics_quarantine").fetchall()
        counters = read_counters(conn)
    assert '"send"' in attrs
    assert len(quarantined) == 1
    assert '\\"receive\\"' in quarantined[0][0]
    assert counters[counter_key("dedup_conflict", app=APP_ID)] == 1
