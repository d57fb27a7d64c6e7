"""End-to-end: SIGKILL of the analytics prepare worker under load loses no event and stores none twice.

A real `atlas daemon` receives batches from 8 sender threads over HTTP on 127.0.0.1.
Once the daemon logs its prepare worker ready, the test stops the worker with
SIGSTOP, lets batches pile up in it, and kills it with SIGKILL. The senders resend every batch that did not
get a 200, as the SDK does. The test then checks that every batch ended with a 200,
that some got `503 prepare_worker_unavailable` first, that the store contains every
distinct event exactly once, and that the daemon logged the exit and still stops
cleanly.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.db import DB_FILENAME
from tests.e2e.processes import AtlasDaemon

APP_ID = "atlas-wallet"
INGEST_KEY = "pk_atlas_wallet_kill"
SENDERS = 8
BATCHES = 1000
EVENTS_PER_BATCH = 20


@dataclass
class SendLog:
    """Status codes and error codes seen by the senders, under one lock."""

    statuses: list[int] = field(default_factory=list)
    error_codes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, body: bytes) -> None:
        """Add one response."""
        with self.lock:
            self.statuses.append(status)
            if status != 200:
                self.error_codes.append(json.loads(body)["error"]["code"])


def batch_body(now: float) -> bytes:
    """Return a batch of `EVENTS_PER_BATCH` new screen views as JSON."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat()
    events = [
        {
            "event_id": str(uuid.uuid4()), "type": "screen_view", "client_ts": stamp, "session_id": "s-1",
            "device_id": f"device-{index % 5}", "app_id": APP_ID, "app_version": "2.3.0", "platform": "ios",
            "privacy_level": "standard", "properties": {}, "screen": "send",
        }  # fmt: skip
        for index in range(EVENTS_PER_BATCH)
    ]
    return json.dumps({"schema": 1, "sent_at": stamp, "events": events}).encode()


def send_until_stored(port: int, bodies: queue.SimpleQueue[bytes], log: SendLog) -> None:
    """Post bodies from `bodies` until it is empty, each until it gets a 200, resending after any other outcome."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/json"}
    try:
        while True:
            try:
                body = bodies.get_nowait()
            except queue.Empty:
                return
            while True:
                try:
                    connection.request("POST", "/api/analytics/events", body, headers)
                    response = connection.getresponse()
                    payload = response.read()
                except (ConnectionError, http.client.HTTPException):
                    connection.close()
                    time.sleep(0.05)
                    continue
                log.record(response.status, payload)
                if response.status == 200:
                    break
                time.sleep(0.05)
    finally:
        connection.close()


def ready_worker_pid(daemon: AtlasDaemon) -> int | None:
    """Return the pid of the daemon's prepare worker once the daemon logged it ready, or None."""
    match = re.search(r"analytics prepare worker started pid=(\d+)", daemon.log())
    return int(match.group(1)) if match else None


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[AtlasDaemon]:
    """A started daemon with one analytics app and rate limits above this test's load."""
    config = {
        "collectors": {"system": {"interval": "5s"}},
        "analytics": {
            "apps": {APP_ID: {"ingest_key": INGEST_KEY}},
            "rate_limits": {"device_batches_per_minute": 100_000, "daemon_batches_per_second": 100_000},
        },
    }
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    started = AtlasDaemon.start(tmp_path / "data", config_path, tmp_path / "daemon.log", api=True)
    assert started.wait_started(), started.log()
    yield started
    started.ensure_dead()


def test_worker_kill_loses_nothing(daemon: AtlasDaemon) -> None:
    """Batches in the killed worker get 503, are resent, and every event is stored exactly once."""
    now = time.time() - 60.0
    bodies: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for _ in range(BATCHES):
        bodies.put(batch_body(now))
    log = SendLog()
    threads = [threading.Thread(target=send_until_stored, args=(daemon.port(), bodies, log)) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()

    deadline = time.monotonic() + 30.0
    pid = ready_worker_pid(daemon)
    while pid is None and time.monotonic() < deadline:
        time.sleep(0.02)
        pid = ready_worker_pid(daemon)
    assert pid is not None, f"no prepare worker started:\n{daemon.log()}"
    # Stopped, the worker takes every batch sent while others are in flight and returns none.
    os.kill(pid, signal.SIGSTOP)
    time.sleep(0.5)
    assert not bodies.empty(), "the senders finished before the worker was stopped"
    os.kill(pid, signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    exit_code = daemon.stop()

    assert exit_code == 0, daemon.log()
    assert log.statuses.count(200) == BATCHES
    assert "prepare_worker_unavailable" in log.error_codes
    assert set(log.error_codes) <= {"prepare_worker_unavailable"}
    assert f"analytics prepare worker exited pid={pid}" in daemon.log()
    with closing(sqlite3.connect(f"file:{daemon.data_dir / DB_FILENAME}?mode=ro", uri=True)) as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM analytics_events").fetchone()
    assert stored == (BATCHES * EVENTS_PER_BATCH, BATCHES * EVENTS_PER_BATCH)
