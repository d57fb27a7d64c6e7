"""Clock-skew correction, future clamping and the late-event window."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import httpx

from storage.db import DB_FILENAME, connect
from storage.events import read_event
from tests.analytics.conftest import APP_ID, AUTH, NOW, make_batch, make_event

URL = "/api/analytics/events"
HOUR = 3600.0
DAY = 86400.0


async def _post_one(client: httpx.AsyncClient, event: dict[str, object], sent_at: float) -> dict[str, object]:
    response = await client.post(URL, json=make_batch([event], sent_at=sent_at), headers=AUTH)
    entry: dict[str, object] = response.json()["events"][0]
    return entry


def _row(data_dir: Path, event_id: object) -> dict[str, object]:
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        row = read_event(conn, APP_ID, str(event_id))
    assert row is not None
    return row


async def test_fast_clock_corrected(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A device clock 2 h fast gives the true event time within 1 s, with the raw times and skew stored."""
    true_time = NOW - 90.0
    event = make_event(client_ts=true_time + 2 * HOUR)

    await _post_one(client, event, sent_at=NOW + 2 * HOUR)

    row = _row(data_dir, event["event_id"])
    assert abs(float(row["event_ts"]) - true_time) < 1.0  # type: ignore[arg-type]
    assert row["client_ts"] == true_time + 2 * HOUR
    assert row["sent_at"] == NOW + 2 * HOUR
    assert row["received_at"] == NOW
    assert row["skew"] == 2 * HOUR


async def test_far_future_clamped(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A corrected time more than 23 h ahead is set to the receipt time and flagged."""
    event = make_event(client_ts=NOW + 24 * HOUR)

    entry = await _post_one(client, event, sent_at=NOW)

    row = _row(data_dir, event["event_id"])
    assert entry["warnings"] == ["future_clamped"]
    assert row["event_ts"] == NOW
    assert row["future_clamped"] == 1


async def test_near_future_kept(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A corrected time 22 h ahead is kept as it is."""
    event = make_event(client_ts=NOW + 22 * HOUR)

    entry = await _post_one(client, event, sent_at=NOW)

    assert entry["warnings"] == []
    assert _row(data_dir, event["event_id"])["event_ts"] == NOW + 22 * HOUR


async def test_six_days_late_accepted(client: httpx.AsyncClient, data_dir: Path) -> None:
    """An event 6 days old (an app offline for days) is accepted with its corrected time."""
    event = make_event(client_ts=NOW - 6 * DAY)

    entry = await _post_one(client, event, sent_at=NOW)

    assert entry["status"] == "accepted"
    assert _row(data_dir, event["event_id"])["event_ts"] == NOW - 6 * DAY


async def test_eight_days_too_old(client: httpx.AsyncClient, data_dir: Path) -> None:
    """An event 8 days old is rejected `too_old` and not stored."""
    event = make_event(client_ts=NOW - 8 * DAY)

    entry = await _post_one(client, event, sent_at=NOW)

    assert (entry["status"], entry["reason"]) == ("rejected", "too_old")
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        assert read_event(conn, APP_ID, str(event["event_id"])) is None


async def test_schema_2_kept_raw(client: httpx.AsyncClient, data_dir: Path) -> None:
    """A `schema: 2` batch is accepted with `schema_unknown` and its events kept as raw JSON."""
    event = make_event("screen_view", new_field={"nested": [1, 2]})

    response = await client.post(URL, json=make_batch([event], schema=2), headers=AUTH)

    entry = response.json()["events"][0]
    assert (entry["status"], entry["warnings"]) == ("accepted", ["schema_unknown"])
    row = _row(data_dir, event["event_id"])
    assert row["schema_known"] == 0
    assert '"new_field"' in str(row["extra"])


async def test_unknown_type_kept_raw(client: httpx.AsyncClient, data_dir: Path) -> None:
    """An event of a type schema 1 does not know is accepted with `schema_unknown`."""
    event = make_event("push_opened", campaign="spring")

    entry = await _post_one(client, event, sent_at=NOW)

    assert (entry["status"], entry["warnings"]) == ("accepted", ["schema_unknown"])
    assert _row(data_dir, event["event_id"])["type"] == "push_opened"
