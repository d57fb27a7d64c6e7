"""`GET /api/metrics/range` and the `label` filter of `GET /api/metrics`, over real uvicorn."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.base import Sample
from storage.db import open_store
from storage.metrics import update_rollups, write_samples
from tests.api.conftest import NOW

HOUR = 3600.0


@pytest.fixture
def history(data_dir: Path) -> Path:
    """The fixture store plus two hours of samples every 10 s for two disks, rolled up."""
    samples = []
    for i in range(720):
        ts = NOW - 2 * HOUR + i * 10.0
        samples.append(Sample.of("disk_usage", 50.0, ts, mount="/"))
        samples.append(Sample.of("disk_usage", 70.0 + (i % 2), ts, mount="/var"))
    conn = open_store(data_dir)
    try:
        write_samples(conn, samples)
        update_rollups(conn, NOW)
    finally:
        conn.close()
    return data_dir


def _error(response) -> dict[str, object]:
    assert response.status_code == 422, response.text
    return response.json()["error"]


async def test_range_default_last_hour(serve, history: Path) -> None:
    """Without from/to/step the last hour of raw samples comes back for every series."""
    client = await serve(history)

    response = await client.get("/api/metrics/range", params={"name": "disk_usage"})

    body = response.json()
    assert response.status_code == 200
    assert body["start"] == NOW - HOUR
    assert body["end"] == NOW
    assert body["step"] is None
    assert [s["labels"] for s in body["series"]] == [{"mount": "/"}, {"mount": "/var"}]
    first = body["series"][0]
    assert first["tier"] == "raw"
    assert first["resolution"] == 0.0
    assert first["points"][0] == {"ts": NOW - HOUR, "value": 50.0, "min": 50.0, "max": 50.0}


async def test_range_label_filter(serve, history: Path) -> None:
    """label=mount:/var keeps only that series."""
    client = await serve(history)

    body = (await client.get("/api/metrics/range", params={"name": "disk_usage", "label": "mount:/var"})).json()

    assert [s["labels"] for s in body["series"]] == [{"mount": "/var"}]


async def test_range_step_minute_rollup(serve, history: Path) -> None:
    """step=5m is served from minute rollups, bucketed by 300 s with min and max."""
    client = await serve(history)
    params = {"name": "disk_usage", "label": "mount:/var", "from": str(NOW - 2 * HOUR), "to": str(NOW), "step": "5m"}

    body = (await client.get("/api/metrics/range", params=params)).json()

    [series] = body["series"]
    assert body["step"] == 300.0
    assert series["tier"] == "minute"
    assert series["resolution"] == 300.0
    assert all(point["ts"] % 300 == 0 for point in series["points"])
    middle = series["points"][5]
    assert (middle["min"], middle["max"], middle["value"]) == (70.0, 71.0, 70.5)


async def test_range_iso_and_relative_times(serve, history: Path) -> None:
    """from accepts a past offset (-30m) and to accepts ISO 8601 with Z."""
    client = await serve(history)
    params = {"name": "cpu_usage", "from": "-30m", "to": "2025-06-15T15:06:40Z"}

    body = (await client.get("/api/metrics/range", params=params)).json()

    assert body["start"] == NOW - 1800.0
    assert body["end"] == 1_750_000_000.0


async def test_range_unknown_metric_empty(serve, history: Path) -> None:
    """An unknown metric returns 200 with no series."""
    client = await serve(history)

    response = await client.get("/api/metrics/range", params={"name": "nope"})

    assert response.status_code == 200
    assert response.json()["series"] == []


@pytest.mark.parametrize(
    ("params", "field", "hint"),
    [
        ({}, "query.name", "a metric name is required"),
        ({"name": "cpu_usage", "from": "yesterday"}, "query.from", "UTC epoch seconds"),
        ({"name": "cpu_usage", "to": "2025-06-15T15:06:40"}, "query.to", "add a UTC offset"),
        ({"name": "cpu_usage", "from": str(NOW), "to": str(NOW - 10)}, "query.from", "starts after `to`"),
        ({"name": "cpu_usage", "step": "0"}, "query.step", "greater than 0"),
        ({"name": "cpu_usage", "step": "fast"}, "query.step", "a duration such as 30s"),
        ({"name": "cpu_usage", "from": "-30d", "step": "1s"}, "query.step", "use step=260s or more"),
        ({"name": "cpu_usage", "from": "1e300"}, "query.from", "between 1970-01-01 and 9999-12-31"),
        ({"name": "cpu_usage", "to": "1e15"}, "query.to", "between 1970-01-01 and 9999-12-31"),
        ({"name": "cpu_usage", "step": "0.0001"}, "query.step", "between 1ms and 9999 years"),
        ({"name": "cpu_usage", "label": "mount"}, "query.label", "KEY:VALUE"),
        ({"name": "cpu_usage", "label": ":x"}, "query.label", "KEY:VALUE"),
    ],
)
async def test_range_invalid_parameters(serve, history: Path, params: dict[str, str], field: str, hint: str) -> None:
    """Each invalid parameter gets 422 in the shared error shape naming the field and the fix."""
    client = await serve(history)

    error = _error(await client.get("/api/metrics/range", params=params))

    assert error["code"] == "invalid_request"
    assert error["details"]["field"] == field
    assert hint in error["message"]


async def test_range_conflicting_labels(serve, history: Path) -> None:
    """One label key given twice with different values is rejected."""
    client = await serve(history)

    response = await client.get("/api/metrics/range", params=[("name", "disk_usage"), ("label", "mount:/"), ("label", "mount:/var")])

    assert "already given" in _error(response)["message"]


async def test_metrics_label_filter(serve, data_dir: Path) -> None:
    """GET /api/metrics?label=mount:/var returns only the series with that label."""
    client = await serve(data_dir)

    items = (await client.get("/api/metrics", params={"label": "mount:/var"})).json()

    assert items == [{"name": "disk_usage", "labels": {"mount": "/var"}, "ts": NOW - 1.0, "value": 80.0}]


async def test_metrics_label_with_name(serve, data_dir: Path) -> None:
    """name and label combine: the named metric's series that carry the label."""
    client = await serve(data_dir)

    params = [("name", "disk_usage"), ("name", "cpu_usage"), ("label", "mount:/")]
    items = (await client.get("/api/metrics", params=params)).json()

    assert [(item["name"], item["labels"]) for item in items] == [("disk_usage", {"mount": "/"})]


async def test_metrics_bad_label_422(serve, data_dir: Path) -> None:
    """A label without a colon gets 422 in the shared error shape."""
    client = await serve(data_dir)

    error = _error(await client.get("/api/metrics", params={"label": "mount=/"}))

    assert error["details"] == {"field": "query.label", "value": "mount=/"}
