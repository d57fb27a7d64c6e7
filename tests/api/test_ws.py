"""`WS /ws` served by real uvicorn on 127.0.0.1, with a real `websockets` client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from atlas_tui.alerts.service import AlertService
from atlas_tui.api import ApiServer, create_api
from atlas_tui.api import ws as ws_module
from atlas_tui.backup.service import BackupEvent
from atlas_tui.config import Config
from collectors.base import Sample
from tests.api.conftest import NOW, STARTED_AT, SYSTEM_STATUS
from storage.backup_runs import finish_run, start_run
from storage.db import open_store
from storage.tokens import revoke_token
from tests.api_tokens import TEST_TOKEN_NAME, bearer, issue_token

RECEIVE_TIMEOUT = 5.0
"""Seconds a test waits for one message."""


@dataclass
class Served:
    """A running app, its URL and a token."""

    app: FastAPI
    url: str
    headers: dict[str, str]

    def connect(self, **options: object) -> connect:
        """Open a WebSocket to `/ws` with the token."""
        return connect(self.url, additional_headers=self.headers, open_timeout=RECEIVE_TIMEOUT, **options)


@pytest.fixture
async def served(data_dir: Path) -> AsyncIterator[Served]:
    """The API app over the fixture store, served on a free port."""
    headers = bearer(issue_token(data_dir))
    app = create_api(
        data_dir, started_at=STARTED_AT, version="9.9.9", statuses_provider=lambda: [SYSTEM_STATUS],
        stale_after=15.0, clock=lambda: NOW,
    )
    server = ApiServer(app, 0)
    server.bind()
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield Served(app=app, url=f"ws://127.0.0.1:{server.port}/ws", headers=headers)
    server.stop()
    await asyncio.wait_for(task, timeout=10.0)


async def _receive(client: ClientConnection) -> dict[str, object]:
    return json.loads(await asyncio.wait_for(client.recv(), RECEIVE_TIMEOUT))


async def _subscribe(client: ClientConnection, topics: list[str], **extra: object) -> dict[str, object]:
    await client.send(json.dumps({"type": "subscribe", "topics": topics, **extra}))
    return await _receive(client)


async def _closed(client: ClientConnection) -> ConnectionClosed:
    """Read until the server closes the connection and return the close."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(client.recv(), RECEIVE_TIMEOUT)
    return closed.value


async def test_subscribe_metrics_snapshot(served: Served) -> None:
    """A metrics subscription is confirmed, then the latest value of every series arrives."""
    async with served.connect() as client:
        confirmed = await _subscribe(client, ["metrics"])
        snapshot = await _receive(client)

    assert confirmed == {"type": "subscribed", "topics": ["metrics"], "names": None}
    assert snapshot["type"] == "metrics"
    assert snapshot["snapshot"] is True
    assert {"name": "cpu_usage", "labels": {}, "ts": NOW - 1.0, "value": 12.0} in snapshot["samples"]
    assert len(snapshot["samples"]) == 3


async def test_metric_tick_pushed(served: Served) -> None:
    """Samples published by the pipeline reach the subscriber as one metrics message."""
    async with served.connect() as client:
        await _subscribe(client, ["metrics"])
        await _receive(client)

        served.app.state.live.publish_samples([Sample.of("cpu_usage", 42.0, NOW), Sample.of("load_1m", 0.5, NOW)])
        tick = await _receive(client)

    assert tick == {
        "type": "metrics",
        "snapshot": False,
        "samples": [
            {"name": "cpu_usage", "labels": {}, "ts": NOW, "value": 42.0},
            {"name": "load_1m", "labels": {}, "ts": NOW, "value": 0.5},
        ],
    }


async def test_ticks_written_as_frames(served: Served) -> None:
    """After the snapshot, ticks go through the frame writer and arrive whole and in order."""
    live = served.app.state.live
    async with served.connect() as first, served.connect() as second:
        for client in (first, second):
            await _subscribe(client, ["metrics"])
            await _receive(client)
        assert live.attached_count == 2

        for value in range(5):
            live.publish_samples([Sample.of("cpu_usage", float(value), NOW + value)])
            await asyncio.sleep(live.coalesce_delay + 0.05)
        ticks = [[await _receive(client) for _ in range(5)] for client in (first, second)]

    for received in ticks:
        assert [tick["samples"][0]["value"] for tick in received] == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_cycles_coalesced(served: Served) -> None:
    """Cycles published within the coalescing delay arrive as one message, newest sample per series."""
    live = served.app.state.live
    async with served.connect() as client:
        await _subscribe(client, ["metrics"])
        await _receive(client)

        live.publish_samples([Sample.of("cpu_usage", 1.0, NOW), Sample.of("load_1m", 0.5, NOW)])
        live.publish_samples([Sample.of("cpu_usage", 2.0, NOW + 1)])
        tick = await _receive(client)

    assert tick["samples"] == [
        {"name": "cpu_usage", "labels": {}, "ts": NOW + 1, "value": 2.0},
        {"name": "load_1m", "labels": {}, "ts": NOW, "value": 0.5},
    ]


async def test_names_filter(served: Served) -> None:
    """With `names`, only those metrics arrive, and a cycle without them sends nothing."""
    live = served.app.state.live
    async with served.connect() as client:
        await _subscribe(client, ["metrics"], names=["cpu_usage"])
        snapshot = await _receive(client)

        live.publish_samples([Sample.of("disk_usage", 1.0, NOW, mount="/")])
        live.publish_samples([Sample.of("disk_usage", 2.0, NOW, mount="/"), Sample.of("cpu_usage", 3.0, NOW)])
        tick = await _receive(client)

    assert [s["name"] for s in snapshot["samples"]] == ["cpu_usage"]
    assert tick["samples"] == [{"name": "cpu_usage", "labels": {}, "ts": NOW, "value": 3.0}]


async def test_no_subscriber_no_work(served: Served) -> None:
    """Publishing with no subscriber queues nothing and reads nothing."""
    live = served.app.state.live

    live.publish_samples([Sample.of("cpu_usage", 1.0, NOW)])
    live.alerts_changed()

    assert live.subscriber_count == 0
    assert live._alert_task is None


async def test_alert_transition_pushed(served: Served, data_dir: Path) -> None:
    """An evaluation cycle that fires a rule pushes the firing event and the alert."""
    config = Config.model_validate({"alert_rules": [{"id": "cpu_any", "condition": "cpu_usage >= 0", "severity": "info"}]})
    service = AlertService(config, data_dir)
    async with served.connect() as client:
        await _subscribe(client, ["alerts"])
        snapshot = await _receive(client)

        await asyncio.to_thread(service.evaluate_once, NOW)
        service.close()
        served.app.state.live.alerts_changed()
        pushed = await _receive(client)

    assert snapshot == {"type": "alerts", "snapshot": True, "events": [], "alerts": []}
    [event] = pushed["events"]
    assert (event["rule_id"], event["kind"], event["to_state"]) == ("cpu_any", "firing", "firing")
    [alert] = pushed["alerts"]
    assert (alert["alert_id"], alert["state"]) == (event["alert_id"], "firing")


async def test_status_repeats(served: Served) -> None:
    """A status subscription gets the status at once, then again every interval."""
    served.app.state.live.status_interval = 0.2
    async with served.connect() as client:
        await _subscribe(client, ["status"])
        first = await _receive(client)
        second = await _receive(client)

    assert first["type"] == second["type"] == "status"
    assert first["status"]["version"] == "9.9.9"
    assert first["status"]["backups"] == []


async def test_resubscribe_replaces_topics(served: Served) -> None:
    """A second subscribe message replaces the topics and is confirmed again."""
    async with served.connect() as client:
        await _subscribe(client, ["metrics"])
        await _receive(client)

        confirmed = await _subscribe(client, ["backups"])
        snapshot = await _receive(client)
        served.app.state.live.publish_samples([Sample.of("cpu_usage", 1.0, NOW)])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.recv(), 0.3)

    assert confirmed["topics"] == ["backups"]
    assert snapshot == {"type": "backups", "snapshot": True, "sets": []}


async def test_backup_events_pushed(served: Served, data_dir: Path) -> None:
    """The backups topic starts with each set's latest run, then carries the schedule's job events."""
    conn = open_store(data_dir)
    try:
        run_id = start_run(conn, kind="backup", trigger="scheduled", now=NOW - 100, set_name="node")
        finish_run(conn, run_id, status="ok", now=NOW - 90, snapshot_id="backup_1700000000_scheduled")
    finally:
        conn.close()
    event = BackupEvent(kind="backup", phase="progress", sets=["node"], at=NOW, entries=12, bytes_read=4096)

    async with served.connect() as client:
        await _subscribe(client, ["backups"])
        snapshot = await _receive(client)
        served.app.state.live.publish_backup(event)
        pushed = await _receive(client)

    assert snapshot["snapshot"] is True
    assert [item["backup_set"] for item in snapshot["sets"]] == ["node"]
    assert snapshot["sets"][0]["last_backup_id"] == "backup_1700000000_scheduled"
    assert pushed == {"type": "backups", "snapshot": False, "event": event.model_dump(mode="json")}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("hello", "message is not JSON"),
        (json.dumps({"type": "subscribe", "topics": ["weather"]}), "use topics from metrics, alerts, backups, status"),
        (json.dumps({"type": "subscribe", "topics": []}), "invalid topics"),
        (json.dumps({"type": "listen", "topics": ["metrics"]}), 'must be "subscribe"'),
        (json.dumps({"type": "subscribe", "topics": ["metrics"], "extra": 1}), "invalid extra"),
        (json.dumps(["metrics"]), "invalid message"),
        ("x" * 5000, "message over 4096 bytes"),
    ],
)
async def test_invalid_subscribe_closed(served: Served, message: str, reason: str) -> None:
    """An invalid subscribe message closes the socket with 1008 and the problem as reason."""
    async with served.connect() as client:
        await client.send(message)
        closed = await _closed(client)

    assert closed.rcvd is not None
    assert closed.rcvd.code == ws_module.CLOSE_INVALID
    assert reason in closed.rcvd.reason


async def test_binary_message_closed(served: Served) -> None:
    """A binary message closes the socket with 1008."""
    async with served.connect() as client:
        await client.send(b"\x00\x01")
        closed = await _closed(client)

    assert closed.rcvd is not None
    assert closed.rcvd.code == ws_module.CLOSE_INVALID


async def test_subscribe_timeout(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that sends no subscribe message in time is closed with 1008."""
    monkeypatch.setattr(ws_module, "SUBSCRIBE_TIMEOUT", 0.2)
    async with served.connect() as client:
        closed = await _closed(client)

    assert closed.rcvd is not None
    assert closed.rcvd.code == ws_module.CLOSE_INVALID
    assert "no subscribe message within 0.2 s" in closed.rcvd.reason


async def test_server_full_closed(served: Served) -> None:
    """When the hub is full a new client is closed with 1013 at once."""
    served.app.state.live.max_subscribers = 0
    async with served.connect() as client:
        closed = await _closed(client)

    assert closed.rcvd is not None
    assert closed.rcvd.code == ws_module.CLOSE_TRY_LATER


async def test_slow_client_dropped(served: Served) -> None:
    """A client that stops reading is dropped when its queue fills, then closed with 4008."""
    live = served.app.state.live
    live.queue_size = 4
    live.coalesce_delay = 0.0
    # About 300 KB of JSON per message, so the socket buffers fill after a few dozen.
    batch = [Sample.of("disk_usage", float(i), NOW, mount="/m" + "x" * 100 + str(i)) for i in range(2000)]
    async with served.connect(max_queue=1, max_size=None, compression=None) as client:
        await _subscribe(client, ["metrics"])
        for _ in range(500):
            live.publish_samples(batch)
            await asyncio.sleep(0.005)
            if live.dropped_count:
                break
        closed = await _closed(client)

    assert live.dropped_count == 1
    assert live.subscriber_count == 0
    assert closed.rcvd is not None
    assert closed.rcvd.code == ws_module.CLOSE_SLOW
    assert "client too slow" in closed.rcvd.reason


async def test_slow_client_spares_others(served: Served) -> None:
    """While one client is dropped for being slow, a reading client keeps its messages."""
    live = served.app.state.live
    live.queue_size = 4
    live.coalesce_delay = 0.0
    batch = [Sample.of("disk_usage", float(i), NOW, mount="/m" + "x" * 100 + str(i)) for i in range(2000)]
    async with served.connect(max_queue=1, max_size=None, compression=None) as slow, served.connect(max_size=None, compression=None) as reader:
        await _subscribe(slow, ["metrics"])
        await _subscribe(reader, ["metrics"])
        await _receive(reader)
        received = 0
        while not live.dropped_count and received < 500:
            live.publish_samples(batch)
            await _receive(reader)
            received += 1
        closed = await _closed(slow)

    assert live.dropped_count == 1
    assert received > live.queue_size
    assert closed.rcvd is not None
    assert closed.rcvd.code == ws_module.CLOSE_SLOW


async def test_revoked_token_closes(served: Served, data_dir: Path) -> None:
    """Revoking the token of an open connection closes it with 1008 within a few seconds."""
    async with served.connect() as client:
        await _subscribe(client, ["status"])
        conn = open_store(data_dir)
        try:
            assert revoke_token(conn, TEST_TOKEN_NAME, NOW)
        finally:
            conn.close()
        closed = await _closed(client)
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1008
    assert closed.rcvd.reason == "token revoked"
