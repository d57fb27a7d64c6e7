"""Nothing privacy forbids reaches the database files: grep atlas.db and its WAL after ingestion."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from storage.db import DB_FILENAME, connect
from storage.events import counter_key, read_counters, read_event
from tests.analytics.conftest import APP_ID, AUTH, CLIENT_IP, make_batch, make_event
from tests.analytics.test_privacy import WALLET_SECRETS

URL = "/api/analytics/events"
DEVICE_ID = "device-PLAINTEXT-4242"
USER_ID = "user-PLAINTEXT-0077"


def _fixture_events() -> list[dict[str, object]]:
    """Events that carry every wallet secret in every place an SDK could put one."""
    properties = {f"p_{rule}": value for rule, value in WALLET_SECRETS.items()}
    people = {"device_id": DEVICE_ID, "user_id": USER_ID}
    return [
        make_event("transaction", properties=properties, **people),
        make_event("error", message=f"send failed to {WALLET_SECRETS['evm_address']}", **people),
        make_event("screen_view", unknown_field=WALLET_SECRETS["bip39_mnemonic"], **people),
        make_event("wallet_imported", seed=WALLET_SECRETS["bip39_mnemonic"], **people),
        make_event("screen_view", privacy_level="standard", properties=properties, **people),
    ]


def _needles() -> dict[str, bytes]:
    needles = {rule: value.encode() for rule, value in WALLET_SECRETS.items()}
    needles.update(ip=CLIENT_IP.encode(), device=DEVICE_ID.encode(), user=USER_ID.encode())
    return needles


def _files(data_dir: Path) -> bytes:
    paths = [data_dir / DB_FILENAME, data_dir / f"{DB_FILENAME}-wal"]
    return b"".join(path.read_bytes() for path in paths if path.exists())


@pytest.fixture
async def ingested(client: httpx.AsyncClient, data_dir: Path) -> Path:
    """The data dir after one batch of `_fixture_events` and a schema-2 copy of it."""
    for schema in (1, 2):
        response = await client.post(URL, json=make_batch(_fixture_events(), schema=schema), headers=AUTH)
        assert response.json()["accepted"] == 5
    return data_dir


def test_no_trace_in_wal(ingested: Path) -> None:
    """Before a checkpoint, neither atlas.db nor its WAL contains the IP, the ids or any secret."""
    content = _files(ingested)

    assert b"203.0.113.0/24" in content  # the grep does see stored rows
    for name, needle in _needles().items():
        assert needle not in content, name
        assert needle.lower() not in content.lower(), name


def test_no_trace_after_checkpoint(ingested: Path) -> None:
    """After a full checkpoint, atlas.db contains none of the IP, the ids or any secret."""
    with closing(connect(ingested / DB_FILENAME)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    content = _files(ingested)

    assert b"203.0.113.0/24" in content
    for name, needle in _needles().items():
        assert needle.lower() not in content.lower(), name


def test_redactions_counted(ingested: Path) -> None:
    """Each dropped secret is counted under `privacy_redactions{rule}`."""
    with closing(connect(ingested / DB_FILENAME)) as conn:
        counters = read_counters(conn)

    for rule in WALLET_SECRETS:
        assert counters.get(counter_key("privacy_redactions", rule=rule), 0) >= 1, rule


async def test_minimal_level(client: httpx.AsyncClient, data_dir: Path) -> None:
    """`minimal` keeps only type, time, app version, platform and session id."""
    event = make_event(
        "transaction", privacy_level="minimal", properties={"plan": "gold"}, device_id=DEVICE_ID, user_id=USER_ID
    )

    await client.post(URL, json=make_batch([event]), headers=AUTH)

    with closing(connect(data_dir / DB_FILENAME)) as conn:
        row = read_event(conn, APP_ID, str(event["event_id"]))
    assert row is not None
    assert (row["type"], row["app_version"], row["platform"], row["session_id"]) == (
        "transaction", "2.3.0", "android", "sess-1",
    )  # fmt: skip
    assert json.loads(str(row["properties"])) == {}
    assert json.loads(str(row["attrs"])) == {}
    assert (row["device_hash"], row["user_hash"], row["ip_prefix"], row["extra"]) == (None, None, None, None)


async def test_standard_level(client: httpx.AsyncClient, data_dir: Path) -> None:
    """`standard` keeps the device pseudonym and per-type fields but no properties or user id."""
    event = make_event("screen_view", privacy_level="standard", properties={"plan": "gold"}, user_id=USER_ID)

    await client.post(URL, json=make_batch([event]), headers=AUTH)

    with closing(connect(data_dir / DB_FILENAME)) as conn:
        row = read_event(conn, APP_ID, str(event["event_id"]))
    assert row is not None
    assert json.loads(str(row["properties"])) == {}
    assert json.loads(str(row["attrs"])) == {"screen": "send"}
    assert row["device_hash"] is not None
    assert row["user_hash"] is None


async def test_full_level(client: httpx.AsyncClient, data_dir: Path) -> None:
    """`full` keeps properties and the user pseudonym."""
    event = make_event("screen_view", properties={"plan": "gold"}, user_id=USER_ID)

    await client.post(URL, json=make_batch([event]), headers=AUTH)

    with closing(connect(data_dir / DB_FILENAME)) as conn:
        row = read_event(conn, APP_ID, str(event["event_id"]))
    assert row is not None
    assert json.loads(str(row["properties"])) == {"plan": "gold"}
    assert row["user_hash"] is not None


async def test_rotation_new_pseudonyms(
    client: httpx.AsyncClient, data_dir: Path, build_app: Callable[..., FastAPI]
) -> None:
    """A new host secret gives the same device a new pseudonym and leaves stored rows alone."""
    before = make_event(device_id=DEVICE_ID)
    await client.post(URL, json=make_batch([before]), headers=AUTH)
    (data_dir / "analytics_secret").rename(data_dir / "analytics_secret.old")
    after = make_event(device_id=DEVICE_ID)

    transport = httpx.ASGITransport(app=build_app(), client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as restarted:
        await restarted.post(URL, json=make_batch([after]), headers=AUTH)

    with closing(connect(data_dir / DB_FILENAME)) as conn:
        hashes = [row[0] for row in conn.execute("SELECT device_hash FROM analytics_events ORDER BY id")]
    assert len(hashes) == 2
    assert hashes[0] != hashes[1]
