"""`/api/alerts` routes over a real store whose alerts come from a real evaluation cycle."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from atlas_tui.api import ApiServer, create_api
from atlas_tui.cli import EXIT_OK, main
from atlas_tui.config import load_config
from tests.api_tokens import bearer, issue_token
from tests.cli.test_alerts_commands import NOW, Seeded, seed_alerts

API_NOW = NOW + 10.0
"""Clock of the app: acknowledgements made through it are stamped with this time."""

API_ACTOR = "api:test"
"""Actor of acknowledgements made with the test token, which `issue_token` names `test`."""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the caller's ATLAS_* variables and XDG config."""
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    monkeypatch.delenv("ATLAS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    """A store with high_cpu firing and disk_full pending."""
    return seed_alerts(tmp_path)


def _app(seeded: Seeded) -> FastAPI:
    return create_api(
        seeded.data_dir,
        started_at=NOW,
        version="t",
        statuses_provider=list,
        clock=lambda: API_NOW,
        config=load_config(seeded.config),
    )


@pytest.fixture
async def client(seeded: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling the app in process through ASGI, with a token of every scope."""
    transport = httpx.ASGITransport(app=_app(seeded))
    headers = bearer(issue_token(seeded.data_dir))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as running:
        yield running


async def _ids(client: httpx.AsyncClient) -> dict[str, str]:
    items = (await client.get("/api/alerts", params={"all": "true"})).json()
    return {item["rule_id"]: item["alert_id"] for item in items}


def _cli_list(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(seeded.args("alerts", "list", "--json")) == EXIT_OK
    items: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return items


# --- GET /api/alerts ----------------------------------------------------------------------


async def test_list_matches_cli(client: httpx.AsyncClient, seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """The API returns exactly the objects `atlas alerts list --json` prints."""
    response = await client.get("/api/alerts")

    assert response.status_code == 200
    assert response.json() == _cli_list(seeded, capsys)


async def test_list_order(client: httpx.AsyncClient) -> None:
    """Firing alerts come before pending ones."""
    items = (await client.get("/api/alerts")).json()

    assert [(item["rule_id"], item["state"]) for item in items] == [("high_cpu", "firing"), ("disk_full", "pending")]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "firing"}, ["high_cpu"]),
        ({"severity": "warning"}, ["disk_full"]),
        ({"state": "pending", "severity": "critical"}, []),
        ({"state": "", "severity": ""}, ["high_cpu", "disk_full"]),
    ],
)
async def test_list_filters(client: httpx.AsyncClient, params: dict[str, str], expected: list[str]) -> None:
    """?state= and ?severity= filter; empty values mean no filter."""
    items = (await client.get("/api/alerts", params=params)).json()

    assert [item["rule_id"] for item in items] == expected


async def test_list_bad_state(client: httpx.AsyncClient) -> None:
    """An unknown ?state= returns 422 with the error body naming the field and the value."""
    response = await client.get("/api/alerts", params={"state": "burning"})

    error = response.json()["error"]
    assert response.status_code == 422
    assert error["code"] == "invalid_request"
    assert error["details"] == {"field": "query.state", "value": "burning"}
    assert "firing" in error["message"]


# --- POST /api/alerts/ack/{id} ------------------------------------------------------------


async def test_ack_with_message(client: httpx.AsyncClient) -> None:
    """A JSON body's message is stored; the actor is `api:<token name>` and the time is the app's clock."""
    alert_id = (await _ids(client))["high_cpu"]

    response = await client.post(f"/api/alerts/ack/{alert_id}", json={"message": "paged the on-call"})

    body = response.json()
    assert response.status_code == 200
    assert body["alert_id"] == alert_id
    assert (body["ack_by"], body["ack_message"], body["ack_at"]) == (API_ACTOR, "paged the on-call", API_NOW)


async def test_ack_empty_body(client: httpx.AsyncClient) -> None:
    """A request without a body acknowledges with an empty message."""
    alert_id = (await _ids(client))["high_cpu"]

    response = await client.post(f"/api/alerts/ack/{alert_id}")

    assert response.status_code == 200
    assert response.json()["ack_by"] == API_ACTOR


async def test_ack_empty_json_object(client: httpx.AsyncClient) -> None:
    """`{}` as the body is accepted too."""
    alert_id = (await _ids(client))["high_cpu"]

    response = await client.post(f"/api/alerts/ack/{alert_id}", json={})

    assert response.status_code == 200


async def test_ack_by_fingerprint(client: httpx.AsyncClient) -> None:
    """The id may be the alert's fingerprint."""
    [firing] = (await client.get("/api/alerts", params={"state": "firing"})).json()

    response = await client.post(f"/api/alerts/ack/{firing['fingerprint']}")

    assert response.json()["alert_id"] == firing["alert_id"]


async def test_ack_unknown_404(client: httpx.AsyncClient) -> None:
    """An unknown id returns 404 with code alert_not_found and the id in details."""
    response = await client.post("/api/alerts/ack/alert_99", json={"message": "x"})

    body = response.json()
    assert response.status_code == 404
    assert body["error"]["code"] == "alert_not_found"
    assert body["error"]["details"] == {"id": "alert_99"}
    assert "alert_99" in body["error"]["message"]


async def test_ack_pending_409(client: httpx.AsyncClient) -> None:
    """A pending alert cannot be acknowledged: 409 naming its state."""
    alert_id = (await _ids(client))["disk_full"]

    response = await client.post(f"/api/alerts/ack/{alert_id}")

    error = response.json()["error"]
    assert response.status_code == 409
    assert error["code"] == "alert_not_acknowledgeable"
    assert error["details"] == {"id": alert_id, "state": "pending"}


async def test_ack_bad_body_422(client: httpx.AsyncClient) -> None:
    """An unknown body key returns 422 with the error body naming the field."""
    alert_id = (await _ids(client))["high_cpu"]

    response = await client.post(f"/api/alerts/ack/{alert_id}", json={"msg": "typo"})

    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": "body.msg"}


async def test_ack_queues_notice(client: httpx.AsyncClient) -> None:
    """The first ack queues an acknowledge notice for the channel that got the firing notice."""
    alert_id = (await _ids(client))["high_cpu"]
    await client.post(f"/api/alerts/ack/{alert_id}")

    deliveries = (await client.get(f"/api/alerts/{alert_id}/history")).json()["deliveries"]

    assert [(d["channel"], d["kind"]) for d in deliveries] == [("hook", "firing"), ("hook", "acknowledge")]


# --- GET /api/alerts/{id}/history ---------------------------------------------------------


async def test_history_events(client: httpx.AsyncClient) -> None:
    """History lists the firing transition, then the API's acknowledgement."""
    alert_id = (await _ids(client))["high_cpu"]
    await client.post(f"/api/alerts/ack/{alert_id}", json={"message": "on it"})

    body = (await client.get(f"/api/alerts/{alert_id}/history")).json()

    assert body["alert"]["alert_id"] == alert_id
    assert [(e["kind"], e["actor"]) for e in body["events"]] == [("firing", "engine"), ("acknowledged", API_ACTOR)]
    assert body["events"][1]["at_iso"] == "2025-06-15T15:06:50Z"


async def test_history_unknown_404(client: httpx.AsyncClient) -> None:
    """History of an unknown id returns 404 with the same error body as ack."""
    response = await client.get("/api/alerts/alert_99/history")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "alert_not_found"


async def test_missing_store_503(tmp_path: Path) -> None:
    """Without a store file the alert routes return 503 like the other routes, since no token can be checked."""
    app = create_api(tmp_path / "none", started_at=0.0, version="t", statuses_provider=list)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=bearer("atlas_x")) as client:
        response = await client.get("/api/alerts")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "token_store_unavailable"


# --- end to end ---------------------------------------------------------------------------


async def test_uvicorn_ack_seen_by_cli(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """An ack over HTTP to real uvicorn on 127.0.0.1 shows in `atlas alerts list --json`."""
    server = ApiServer(_app(seeded), 0)
    server.bind()
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(250):
            if server.started:
                break
            await asyncio.sleep(0.02)
        headers = bearer(issue_token(seeded.data_dir))
        base_url = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=5.0, headers=headers) as client:
            alert_id = (await _ids(client))["high_cpu"]
            response = await client.post(f"/api/alerts/ack/{alert_id}", json={"message": "via api"})
    finally:
        server.stop()
        await asyncio.wait_for(serving, timeout=5.0)

    assert response.status_code == 200
    [firing] = [item for item in _cli_list(seeded, capsys) if item["alert_id"] == alert_id]
    assert (firing["ack_by"], firing["ack_message"]) == (API_ACTOR, "via api")
