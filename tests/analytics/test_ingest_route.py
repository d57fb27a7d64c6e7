"""`POST /api/analytics/events`: statuses per event and whole-batch errors."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
from fastapi import FastAPI

from storage.db import DB_FILENAME, connect
from storage.events import count_events, counter_key, read_counters
from tests.analytics.conftest import APP_ID, AUTH, CLIENT_IP, make_batch, make_event

URL = "/api/analytics/events"


def _store(data_dir: Path) -> sqlite3.Connection:
    return connect(data_dir / DB_FILENAME)


async def test_valid_batch_accepted(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A batch with one event of every type is stored whole and each event is accepted."""
    kinds = ["app_launch", "screen_view", "user_interaction", "transaction", "performance_metric", "error", "session_end"]
    events = [make_event(kind) for kind in kinds]

    response = await client.post(URL, json=make_batch(events), headers=AUTH)

    assert response.status_code == 200
    body = response.json()
    assert [entry["status"] for entry in body["events"]] == ["accepted"] * 7
    assert body["accepted"] == 7
    with closing(_store(data_dir)) as conn:
        assert count_events(conn) == 7


async def test_bad_event_rejected_alone(client: httpx.AsyncClient, data_dir: Path) -> None:
    """Invalid events get their own reason while the valid ones in the batch are stored."""
    no_id = make_event()
    del no_id["event_id"]
    events = [
        make_event(),
        no_id,
        make_event(event_id="not-a-uuid"),
        make_event("transaction", amount="lots"),
        make_event(app_id="other-app"),
        "not an object",
    ]

    body = (await client.post(URL, json=make_batch(events), headers=AUTH)).json()

    statuses = [(entry["status"], entry["reason"]) for entry in body["events"]]
    assert statuses == [
        ("accepted", None),
        ("rejected", "missing_event_id"),
        ("rejected", "invalid_event_id"),
        ("rejected", "invalid_event"),
        ("rejected", "app_mismatch"),
        ("rejected", "invalid_event"),
    ]
    assert "amount" in body["events"][3]["detail"]
    with closing(_store(data_dir)) as conn:
        assert count_events(conn) == 1
        counters = read_counters(conn)
    assert counters[counter_key("events_rejected", app=APP_ID, reason="missing_event_id")] == 1


async def test_gzip_body_accepted(client: httpx.AsyncClient) -> None:
    """A gzip JSON body with `Content-Encoding: gzip` is decoded and stored."""
    payload = gzip.compress(json.dumps(make_batch([make_event(), make_event()])).encode())
    headers = {**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"}

    response = await client.post(URL, content=payload, headers=headers)

    assert response.status_code == 200
    assert response.json()["accepted"] == 2


async def test_unknown_key_401(client: httpx.AsyncClient) -> None:
    """A missing or unknown ingest key gets 401 with the error body."""
    missing = await client.post(URL, json=make_batch([make_event()]))
    wrong = await client.post(URL, json=make_batch([make_event()]), headers={"Authorization": "Bearer pk_nope_123"})

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unknown_ingest_key"


async def test_bad_json_400(client: httpx.AsyncClient) -> None:
    """A body that is not JSON gets 400 `invalid_json`."""
    response = await client.post(URL, content=b"{not json", headers=AUTH)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_missing_sent_at_400(client: httpx.AsyncClient) -> None:
    """A schema-1 batch without `sent_at` gets 400 `invalid_batch`."""
    batch = make_batch([make_event()])
    del batch["sent_at"]

    response = await client.post(URL, json=batch, headers=AUTH)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_batch"


async def test_501_events_413(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A batch of 501 events gets 413 and stores nothing."""
    response = await client.post(URL, json=make_batch([make_event() for _ in range(501)]), headers=AUTH)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_events"
    with closing(_store(data_dir)) as conn:
        assert count_events(conn) == 0


async def test_500_events_accepted(client: httpx.AsyncClient) -> None:
    """A batch of exactly 500 events is accepted."""
    response = await client.post(URL, json=make_batch([make_event() for _ in range(500)]), headers=AUTH)

    assert response.status_code == 200
    assert response.json()["accepted"] == 500


async def test_body_over_1mib_413(client: httpx.AsyncClient) -> None:
    """A body over 1 MiB gets 413 `body_too_large`."""
    response = await client.post(URL, content=b" " * (1024 * 1024 + 1), headers=AUTH)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_gzip_bomb_413(client: httpx.AsyncClient) -> None:
    """A small gzip body that decodes to more than 8 MiB gets 413 `decoded_body_too_large`."""
    payload = gzip.compress(b" " * (9 * 1024 * 1024))
    headers = {**AUTH, "Content-Encoding": "gzip"}

    response = await client.post(URL, content=payload, headers=headers)

    assert len(payload) < 1024 * 1024
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "decoded_body_too_large"


async def test_device_rate_429(build_app: Callable[..., FastAPI]) -> None:
    """A device over its batch rate gets 429 with `Retry-After`; another device is unaffected."""
    app = build_app(rate_limits={"device_batches_per_minute": 2})
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        codes = [(await http.post(URL, json=make_batch([make_event()]), headers=AUTH)).status_code for _ in range(3)]
        limited = await http.post(URL, json=make_batch([make_event()]), headers=AUTH)
        other = await http.post(URL, json=make_batch([make_event(device_id="device-2")]), headers=AUTH)

    assert codes == [200, 200, 429]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["details"]["scope"] == "device"
    assert other.status_code == 200


async def test_daemon_rate_429(build_app: Callable[..., FastAPI]) -> None:
    """Over the daemon-wide rate, any batch gets 429 before its body is read."""
    app = build_app(rate_limits={"daemon_batches_per_second": 1})
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        first = await http.post(URL, json=make_batch([make_event()]), headers=AUTH)
        second = await http.post(URL, json=make_batch([make_event(device_id="device-2")]), headers=AUTH)

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["details"]["scope"] == "daemon"


async def test_openapi_documents_batch(client: httpx.AsyncClient) -> None:
    """The OpenAPI schema names `Batch` as the request body and lists every event model."""
    schema = (await client.get("/openapi.json")).json()

    body = schema["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Batch"}
    for model in ("Batch", "AppLaunch", "ScreenView", "UserInteraction", "Transaction", "PerformanceMetric",
                  "ErrorEvent", "SessionEnd"):  # fmt: skip
        assert model in schema["components"]["schemas"]


async def test_masked_ip_stored(client: httpx.AsyncClient, data_dir: Path) -> None:
    """The client address is stored as its /24 network."""
    event = make_event()
    await client.post(URL, json=make_batch([event]), headers=AUTH)

    with closing(_store(data_dir)) as conn:
        stored = conn.execute("SELECT ip_prefix FROM analytics_events").fetchone()[0]
    assert stored == CLIENT_IP.rsplit(".", 1)[0] + ".0/24"


async def test_nan_400(client: httpx.AsyncClient) -> None:
    """A body with NaN, which Python's json accepts but JSON does not, gets 400 `invalid_json`."""
    body = json.dumps(make_batch([make_event(properties={"x": float("nan")})])).encode()

    response = await client.post(URL, content=body, headers=AUTH)

    assert b"NaN" in body
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_store_ip_false(build_app: Callable[..., FastAPI], data_dir: Path) -> None:
    """With `store_ip: false` no address is stored at all."""
    transport = httpx.ASGITransport(app=build_app(store_ip=False), client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        await http.post(URL, json=make_batch([make_event()]), headers=AUTH)

    with closing(_store(data_dir)) as conn:
        assert conn.execute("SELECT ip_prefix FROM analytics_events").fetchone()[0] is None


async def test_bad_secret_503(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A damaged host secret file gets 503 naming the file, and stores nothing."""
    (data_dir / "analytics_secret").write_bytes(b"too short")

    response = await client.post(URL, json=make_batch([make_event()]), headers=AUTH)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "host_secret_unavailable"
    with closing(_store(data_dir)) as conn:
        assert count_events(conn) == 0


async def test_unknown_fields_counted(client: httpx.AsyncClient, data_dir: Path) -> None:
    """Unknown fields of a known event are kept raw and counted under `unknown_fields`."""
    event = make_event(ab_test="variant-b")

    await client.post(URL, json=make_batch([event]), headers=AUTH)

    with closing(_store(data_dir)) as conn:
        extra = conn.execute("SELECT extra FROM analytics_events").fetchone()[0]
        counters = read_counters(conn)
    assert json.loads(extra) == {"ab_test": "variant-b"}
    assert counters[counter_key("unknown_fields", app=APP_ID)] == 1


async def test_minimal_rate_limited(build_app: Callable[..., FastAPI]) -> None:
    """Events at privacy level `minimal` still count against their device's rate."""
    app = build_app(rate_limits={"device_batches_per_minute": 1})
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        batches = [make_batch([make_event(privacy_level="minimal")]) for _ in range(2)]
        codes = [(await http.post(URL, json=batch, headers=AUTH)).status_code for batch in batches]

    assert codes == [200, 429]
