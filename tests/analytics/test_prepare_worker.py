"""The prepare worker: a real child process that returns what inline preparing returns, and fails safe when killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from atlas_tui.analytics import prepare_worker
from atlas_tui.analytics.errors import BatchRejectedError, PrepareWorkerError
from atlas_tui.analytics.ingest import PreparedBatch, decode_batch, prepare_batch
from atlas_tui.analytics.prepare_worker import PrepareWorker
from atlas_tui.analytics.privacy import Pseudonymizer
from atlas_tui.api.analytics import IngestState
from storage.db import DB_FILENAME, connect
from storage.events import count_events, read_event
from tests.analytics.conftest import AUTH, CLIENT_IP, NOW, analytics_config, make_batch, make_event

URL = "/api/analytics/events"
SECRET = bytes(range(32))
MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"


async def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll `condition` every 20 ms until it holds, or fail after `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def worker() -> AsyncIterator[PrepareWorker]:
    """A started worker with the test config, stopped after the test."""
    started = PrepareWorker(analytics_config().analytics, SECRET)
    started.start_soon()
    await wait_until(lambda: started.ready)
    yield started
    await started.close()


def mixed_batch() -> dict[str, Any]:
    """A batch with every event type, an invalid and an unknown event, a wallet secret and a too-old event."""
    events = [make_event(kind) for kind in ("app_launch", "screen_view", "user_interaction", "transaction")]
    events += [make_event(kind) for kind in ("performance_metric", "error", "session_end")]
    events.append(make_event(properties={"note": MNEMONIC, "plain": "ok"}))
    events.append(make_event(platform="windows"))
    events.append(make_event("future_kind", surprise=[1, 2]))
    events.append(make_event(client_ts=NOW - 30 * 86400.0))
    events.append({"type": "screen_view"})
    return make_batch(events)


def inline(body: bytes) -> PreparedBatch:
    """Prepare `body` in this process, as the route does without the worker."""
    config = analytics_config().analytics
    return prepare_batch(
        decode_batch(body), app_id="atlas-wallet", config=config, pseudonymizer=Pseudonymizer(SECRET),
        client_ip=CLIENT_IP, now=NOW,
    )  # fmt: skip


async def test_worker_prepares_like_inline(worker: PrepareWorker) -> None:
    """The worker's rows, statuses, counters and device pseudonyms equal those of inline preparing."""
    body = json.dumps(mixed_batch()).encode()

    remote = await worker.prepare(body, app_id="atlas-wallet", client_ip=CLIENT_IP, now=NOW)
    local = inline(body)

    assert remote.rows == local.rows
    assert [row.redactions for _, row in remote.rows] == [row.redactions for _, row in local.rows]
    remote_statuses = [status.model_dump() for status in remote.statuses if status is not None]
    local_statuses = [status.model_dump() for status in local.statuses if status is not None]
    assert remote_statuses == local_statuses
    assert [status is None for status in remote.statuses] == [status is None for status in local.statuses]
    assert remote.counts == local.counts
    assert remote.device_hashes == local.device_hashes
    assert worker.batches == 1


async def test_worker_rejects_envelope_like_inline(worker: PrepareWorker) -> None:
    """A body that is not JSON raises the same `BatchRejectedError` as inline preparing."""
    with pytest.raises(BatchRejectedError) as remote:
        await worker.prepare(b"{not json", app_id="atlas-wallet", client_ip=None, now=NOW)
    with pytest.raises(BatchRejectedError) as local:
        inline(b"{not json")

    assert remote.value.status_code == local.value.status_code == 400
    assert remote.value.code == local.value.code == "invalid_json"
    assert str(remote.value) == str(local.value)


async def test_killed_worker_fails_pending(worker: PrepareWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch pending when the child is killed raises `PrepareWorkerError`, and a new child takes the next one."""
    monkeypatch.setattr(prepare_worker, "RESTART_DELAY", 0.0)
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    body = json.dumps(make_batch([make_event()])).encode()
    pending = asyncio.create_task(worker.prepare(body, app_id="atlas-wallet", client_ip=None, now=NOW))
    await asyncio.sleep(0.2)
    os.kill(pid, signal.SIGKILL)

    with pytest.raises(PrepareWorkerError):
        await pending
    await wait_until(lambda: worker.pid is None)
    worker.start_soon()
    await wait_until(lambda: worker.ready)
    prepared = await worker.prepare(body, app_id="atlas-wallet", client_ip=None, now=NOW)

    assert worker.pid != pid
    assert worker.starts == 2
    assert len(prepared.rows) == 1


async def test_worker_not_ready_raises() -> None:
    """`prepare` on a worker that was never started raises `PrepareWorkerError` at once."""
    idle = PrepareWorker(analytics_config().analytics, SECRET)

    with pytest.raises(PrepareWorkerError):
        await idle.prepare(b"{}", app_id="atlas-wallet", client_ip=None, now=NOW)


async def test_idle_worker_exits() -> None:
    """The child exits after `idle_timeout` s without a batch, and `close` afterwards returns at once."""
    short = PrepareWorker(analytics_config().analytics, SECRET, idle_timeout=0.3)
    short.start_soon()
    await wait_until(lambda: short.ready)
    pid = short.pid
    assert pid is not None
    await short.prepare(json.dumps(make_batch([make_event()])).encode(), app_id="atlas-wallet", client_ip=None, now=NOW)

    await wait_until(lambda: short.pid is None, timeout=5.0)

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    await short.close()
    short.start_soon()
    assert short.pid is None


@pytest.fixture
async def worker_app(build_app: Callable[..., FastAPI]) -> AsyncIterator[FastAPI]:
    """The default app, whose prepare worker is stopped after the test."""
    app = build_app()
    yield app
    await app.state.analytics.close()


async def post_together(app: FastAPI, batches: list[dict[str, Any]]) -> list[httpx.Response]:
    """Post `batches` concurrently to `app` over ASGI."""
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        return await asyncio.gather(*(http.post(URL, json=batch, headers=AUTH) for batch in batches))


def stored(data_dir: Path) -> int:
    """Return the number of events in the store."""
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        return count_events(conn)


async def test_route_uses_worker_for_concurrent_batches(worker_app: FastAPI, data_dir: Path) -> None:
    """Concurrent batches start the worker, go through it once it is ready, and are stored once each."""
    state: IngestState = worker_app.state.analytics
    first = [make_batch([make_event() for _ in range(20)]) for _ in range(4)]
    await post_together(worker_app, first)
    await wait_until(lambda: state.worker is not None and state.worker.ready)

    second = [make_batch([make_event() for _ in range(20)]) for _ in range(4)]
    responses = await post_together(worker_app, second + first)

    assert [response.status_code for response in responses] == [200] * 8
    assert [response.json()["accepted"] for response in responses] == [20] * 4 + [0] * 4
    assert [response.json()["duplicate"] for response in responses] == [0] * 4 + [20] * 4
    assert state.worker is not None and state.worker.batches > 0
    assert stored(data_dir) == 160


async def test_route_without_worker_setting(build_app: Callable[..., FastAPI], data_dir: Path) -> None:
    """With `prepare_in_worker: false`, concurrent batches are prepared inline and no process starts."""
    app = build_app(prepare_in_worker=False)

    responses = await post_together(app, [make_batch([make_event() for _ in range(10)]) for _ in range(4)])

    assert [response.status_code for response in responses] == [200] * 4
    assert app.state.analytics.worker is None
    assert stored(data_dir) == 40


async def test_route_worker_killed_503_then_resend(
    worker_app: FastAPI, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches in the killed worker get 503 and store nothing; resent, every event is stored exactly once."""
    monkeypatch.setattr(prepare_worker, "RESTART_DELAY", 0.0)
    state: IngestState = worker_app.state.analytics
    await post_together(worker_app, [make_batch([make_event()]) for _ in range(4)])
    await wait_until(lambda: state.worker is not None and state.worker.ready)
    assert state.worker is not None and state.worker.pid is not None
    pid = state.worker.pid
    batches = [make_batch([make_event() for _ in range(10)]) for _ in range(6)]

    os.kill(pid, signal.SIGSTOP)
    sending = asyncio.create_task(post_together(worker_app, batches))
    await asyncio.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    first = await sending

    failed = [response for response in first if response.status_code == 503]
    assert failed, "no batch was waiting in the killed worker"
    assert all(response.json()["error"]["code"] == "prepare_worker_unavailable" for response in failed)
    assert all(response.headers["Retry-After"] == "1" for response in failed)
    assert {response.status_code for response in first} <= {200, 503}
    assert stored(data_dir) == 4 + 10 * (len(first) - len(failed))

    again = await post_together(worker_app, batches)

    assert [response.status_code for response in again] == [200] * 6
    assert sum(response.json()["accepted"] for response in again) == 10 * len(failed)
    assert stored(data_dir) == 4 + 60


async def test_route_worker_follows_config_reload(worker_app: FastAPI, data_dir: Path) -> None:
    """After a config reload the old child stops, and a new one prepares with the new config."""
    state: IngestState = worker_app.state.analytics
    await post_together(worker_app, [make_batch([make_event()]) for _ in range(4)])
    await wait_until(lambda: state.worker is not None and state.worker.ready)
    old = state.worker

    # What `atlas_tui.reload` does on SIGHUP.
    state.config = analytics_config(store_ip=False).analytics
    await post_together(worker_app, [make_batch([make_event()]) for _ in range(4)])
    await wait_until(lambda: state.worker is not None and state.worker.ready)
    events = [make_event() for _ in range(12)]
    responses = await post_together(worker_app, [make_batch(events[start : start + 3]) for start in range(0, 12, 3)])

    assert [response.status_code for response in responses] == [200] * 4
    assert state.worker is not old
    assert old is not None and old.pid is None
    assert state.worker is not None and state.worker.batches > 0
    with closing(connect(data_dir / DB_FILENAME)) as conn:
        rows = [read_event(conn, "atlas-wallet", event["event_id"]) for event in events]
    assert None not in rows
    assert {row["ip_prefix"] for row in rows if row is not None} == {None}
