"""`/api/system/status` shows rejected store writes per collector and for the whole store."""

from __future__ import annotations

from pathlib import Path

from collectors.base import CollectorStatus
from collectors.scheduler import ScheduledStatus
from tests.api.conftest import NOW

MALFORMED = "DatabaseError: database disk image is malformed"


def _failing(name: str, failures: int, at: float) -> ScheduledStatus:
    return ScheduledStatus(
        name=name,
        interval=5.0,
        last_run=at,
        last_error=f"store write failed: {MALFORMED}",
        store_write_failures=failures,
        last_store_error=MALFORMED,
        last_store_error_at=at,
    )


async def test_collector_write_failures_shown(serve, data_dir: Path) -> None:
    """Each collector reports its store write failures and the store error as last_error."""
    statuses = [_failing("system", 3, NOW - 5.0), ScheduledStatus(name="self_health", interval=5.0)]
    client = await serve(data_dir, statuses)

    body = (await client.get("/api/system/status")).json()

    by_name = {item["name"]: item for item in body["collectors"]}
    assert by_name["system"]["store_write_failures"] == 3
    assert by_name["system"]["last_error"] == f"store write failed: {MALFORMED}"
    assert by_name["self_health"]["store_write_failures"] == 0
    assert by_name["self_health"]["last_error"] is None


async def test_store_last_write_error(serve, data_dir: Path) -> None:
    """store.last_write_error is the newest failure among the collectors, with its time."""
    older = _failing("system", 1, NOW - 60.0)
    newer = _failing("self_health", 2, NOW - 5.0)
    newer.last_store_error = "OperationalError: disk I/O error"
    client = await serve(data_dir, [older, newer])

    store = (await client.get("/api/system/status")).json()["store"]

    assert store["last_write_error"] == "OperationalError: disk I/O error"
    assert store["last_write_error_at"] == NOW - 5.0


async def test_plain_status_counts_zero(serve, data_dir: Path) -> None:
    """A provider of plain CollectorStatus objects reports zero write failures and no store error."""
    client = await serve(data_dir, [CollectorStatus(name="system", interval=5.0)])

    body = (await client.get("/api/system/status")).json()

    assert body["collectors"][0]["store_write_failures"] == 0
    assert body["store"]["last_write_error"] is None
