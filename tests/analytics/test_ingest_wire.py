"""The ingest route's reply as bytes, and text that is not valid Unicode."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import httpx

from atlas_tui.analytics.ingest import IngestResponse
from storage.db import DB_FILENAME, connect
from storage.events import count_events
from tests.analytics.conftest import APP_ID, AUTH, make_batch, make_event

URL = "/api/analytics/events"
LONE = "\\udfff"
"""A lone surrogate as a JSON escape: valid JSON, but no character UTF-8 can hold."""


def _body(events: list[dict[str, object]], marker: str) -> bytes:
    """Encode the batch, then swap each `marker` string for a lone surrogate escape."""
    return json.dumps(make_batch(events)).replace(f'"{marker}"', f'"{LONE}"').encode()


async def test_response_matches_the_model(client: httpx.AsyncClient) -> None:
    """The hand-built response body is what `IngestResponse` describes, key for key."""
    events = [make_event(), make_event(app_id="other-app"), {"type": "no_id"}, make_event("custom_thing")]
    response = await client.post(URL, json=make_batch(events), headers=AUTH)

    body = response.json()
    assert response.status_code == 200
    assert IngestResponse.model_validate(body).model_dump(mode="json") == body
    assert [entry["status"] for entry in body["events"]] == ["accepted", "rejected", "rejected", "accepted"]
    assert body["events"][3]["warnings"] == ["schema_unknown"]


async def test_lone_surrogates(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A lone surrogate in a typed field rejects that event; in a property or an unknown event it is kept escaped.

    Resending the same bytes reports duplicates, so the content hash is stable for such text.
    """
    events = [
        make_event(screen="MARK"),
        make_event(properties={"note": "MARK"}),
        {**make_event("custom_thing"), "detail": "MARK"},
    ]
    body = _body(events, "MARK")
    headers = {**AUTH, "Content-Type": "application/json"}

    first = await client.post(URL, content=body, headers=headers)
    second = await client.post(URL, content=body, headers=headers)

    assert [entry["status"] for entry in first.json()["events"]] == ["rejected", "accepted", "accepted"]
    assert first.json()["events"][0]["reason"] == "invalid_event"
    assert [entry["status"] for entry in second.json()["events"]] == ["rejected", "duplicate", "duplicate"]
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        assert count_events(conn, APP_ID) == 2
        texts = [row[0] + (row[1] or "") for row in conn.execute("SELECT properties, extra FROM analytics_events")]
    assert all(LONE in text for text in texts)
