"""End-to-end: the SDK simulator against a real `atlas daemon`, through a faulty proxy.

The simulator sends over HTTP to a proxy on 127.0.0.1 that forwards to the daemon.
For some batches the proxy lets the request reach the daemon, reads the daemon's
response (so the batch is committed) and then closes the connection without a
response; the simulator gets a connection error and resends the same batch. Other
batches get a 503 or a 429 with `Retry-After` from the proxy without reaching the
daemon. The test then reads the store read-only and checks that every distinct event
the simulator generated is stored exactly once, and that crash-free sessions and
users per release equal the simulator's tally twice over: once computed from the
stored rows with SQL of its own, and once as `build_summary` reports them, run on a
copy of the store (made with SQLite's backup API from a read-only connection) after
`refresh` brought its sessions and rollups up to date.
"""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from atlas_tui.analytics.models import AnalyticsSummary
from atlas_tui.analytics.reports import build_summary
from atlas_tui.analytics.rollups import refresh
from atlas_tui.analytics.simulator import HttpSender, RunReport, Simulator, SimulatorConfig
from storage.db import DB_FILENAME, connect
from tests.e2e.processes import AtlasDaemon

APP_ID = "atlas-wallet"
INGEST_KEY = "pk_atlas_wallet_e2e"
DROP_EVERY = 4
"""The proxy drops the response of every 4th request it forwards, after the daemon committed it."""
SERVER_ERROR_AT = 2
"""Number of the request the proxy itself responds to with 503."""
RATE_LIMITED_AT = 7
"""Number of the request the proxy itself responds to with 429 and `Retry-After: 1`."""


@dataclass
class FaultLog:
    """What the proxy did, by request number from 1."""

    requests: int = 0
    dropped_after_commit: list[int] = field(default_factory=list)
    server_errors: list[int] = field(default_factory=list)
    rate_limited: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_number(self) -> int:
        """Count one request and return its number."""
        with self.lock:
            self.requests += 1
            return self.requests


class FaultyProxy(ThreadingHTTPServer):
    """A proxy on 127.0.0.1 to one daemon port that injects faults by request number."""

    daemon_threads = True

    def __init__(self, daemon_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.daemon_port = daemon_port
        self.faults = FaultLog()

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: FaultyProxy
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY, Nagle's
        # algorithm and the client's delayed ACK add about 40 ms to each response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        number = self.server.faults.next_number()
        if number == SERVER_ERROR_AT:
            self.server.faults.server_errors.append(number)
            self._respond(503, {}, b'{"error": {"code": "injected"}}')
            return
        if number == RATE_LIMITED_AT:
            self.server.faults.rate_limited.append(number)
            self._respond(429, {"Retry-After": "1"}, b'{"error": {"code": "rate_limited"}}')
            return

        status, headers, response_body = self._forward(body)
        if number % DROP_EVERY == 0 and status == 200:
            # The daemon has committed the batch; the client never hears about it.
            self.server.faults.dropped_after_commit.append(number)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._respond(status, headers, response_body)

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.daemon_port, timeout=30)
        try:
            passed = {name: value for name, value in self.headers.items() if name.lower() != "host"}
            upstream.request("POST", self.path, body=body, headers=passed)
            response = upstream.getresponse()
            response_body = response.read()
            kept = {"Content-Type", "Retry-After"}
            headers = {name: value for name, value in response.getheaders() if name in kept}
            return response.status, headers, response_body
        finally:
            upstream.close()

    def _respond(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Keep the test output quiet."""


@dataclass(frozen=True)
class StoredRelease:
    """Crash counts of one release, computed from the stored rows."""

    sessions: int
    crashed_sessions: int
    devices: int
    crashed_devices: int


def stored_event_ids(data_dir: Path) -> list[str]:
    """Return the event id of every stored analytics event, read-only."""
    with _read_only(data_dir) as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM analytics_events WHERE app_id = ?", (APP_ID,))]


def stored_releases(data_dir: Path) -> dict[tuple[str, str], StoredRelease]:
    """Count sessions, crashed sessions and their devices per (version, platform) with plain SQL.

    A session is an `app_launch`; it crashed when an `error` with `fatal: true`
    carries its session id. This follows the crash-free definition and uses no
    ATLAS code, so it checks the stored data independently.
    """
    query = """
        WITH launches AS (
            SELECT app_version, platform, session_id, device_hash FROM analytics_events
            WHERE app_id = :app AND type = 'app_launch'
        ), crashed AS (
            SELECT DISTINCT session_id FROM analytics_events
            WHERE app_id = :app AND type = 'error' AND json_extract(attrs, '$.fatal') = 1
        )
        SELECT app_version, platform,
               count(*),
               count(crashed.session_id),
               count(DISTINCT device_hash),
               count(DISTINCT CASE WHEN crashed.session_id IS NOT NULL THEN device_hash END)
        FROM launches LEFT JOIN crashed USING (session_id)
        GROUP BY app_version, platform
    """
    with _read_only(data_dir) as conn:
        rows = conn.execute(query, {"app": APP_ID}).fetchall()
    return {(version, platform): StoredRelease(*counts) for version, platform, *counts in rows}


def reported_summary(data_dir: Path, copy_dir: Path, config: SimulatorConfig) -> AnalyticsSummary:
    """Copy the store, refresh the copy's sessions and rollups, and build the summary of the simulated days.

    The daemon's store is only read; `refresh` writes to the copy.
    """
    copy_path = copy_dir / DB_FILENAME
    with _read_only(data_dir) as source, closing(connect(copy_path)) as copy:
        source.backup(copy)
        refresh(copy)
        start = config.end - config.days * 86400.0 - 3600.0
        return build_summary(copy, start=start, end=config.end + 3600.0, app=APP_ID, now=config.end + 7200.0)


def _read_only(data_dir: Path) -> closing[sqlite3.Connection]:
    uri = f"file:{data_dir / DB_FILENAME}?mode=ro"
    return closing(sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None))


def analytics_daemon_config() -> dict[str, object]:
    """Return a daemon config with one analytics app and slow collection, so the store stays quiet."""
    return {
        "collectors": {"system": {"interval": "5s"}},
        "analytics": {"apps": {APP_ID: {"ingest_key": INGEST_KEY}}},
    }


def simulate(url: str) -> tuple[Simulator, RunReport]:
    """Run a small simulation (15 devices, 2 days, frequent crashes) against `url`."""
    config = SimulatorConfig(
        devices=15, days=2.0, end=time.time(), seed=4, crash_rate=0.08, app_id=APP_ID,
        retry_backoff=0.01,
    )
    simulator = Simulator(config)
    sender = HttpSender(url, INGEST_KEY, timeout=30.0)
    try:
        report = simulator.run(sender)
    finally:
        sender.close()
    return simulator, report


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AtlasDaemon, FaultyProxy, Simulator, RunReport]]:
    """Start a daemon and a faulty proxy in front of it, and run the simulator through the proxy once.

    The run takes several seconds, so the tests of this module share it and only read.
    """
    root = tmp_path_factory.mktemp("analytics-e2e")
    config_path = root / "config.json"
    config_path.write_text(json.dumps(analytics_daemon_config()), encoding="utf-8")
    daemon = AtlasDaemon.start(root / "data", config_path, root / "daemon.log", api=True)
    proxy: FaultyProxy | None = None
    (root / "copy").mkdir()
    (root / "copy-overall").mkdir()
    try:
        assert daemon.wait_started(), daemon.log()
        proxy = FaultyProxy(daemon.port())
        threading.Thread(target=proxy.serve_forever, name="faulty-proxy", daemon=True).start()
        simulator, report = simulate(proxy.url)
        yield daemon, proxy, simulator, report
    finally:
        if proxy is not None:
            proxy.shutdown()
            proxy.server_close()
        daemon.ensure_dead()


def test_faults_were_injected(simulated_run: tuple[AtlasDaemon, FaultyProxy, Simulator, RunReport]) -> None:
    """The proxy dropped committed batches and responded 503 and 429, so every retry path ran."""
    _, proxy, _, report = simulated_run
    assert len(proxy.faults.dropped_after_commit) >= 5
    assert proxy.faults.server_errors == [SERVER_ERROR_AT]
    assert proxy.faults.rate_limited == [RATE_LIMITED_AT]
    assert report.rate_limited == 1
    assert report.retries == len(proxy.faults.dropped_after_commit) + 2


def test_every_event_stored_once(simulated_run: tuple[AtlasDaemon, FaultyProxy, Simulator, RunReport]) -> None:
    """The store contains each generated event exactly once, despite resent batches."""
    daemon, _, simulator, report = simulated_run
    stored = stored_event_ids(daemon.data_dir)
    assert report.undelivered_events == 0
    assert len(stored) == len(simulator.plan.events)
    assert len(set(stored)) == len(stored)
    assert set(stored) == set(simulator.plan.events)


def test_resent_events_reported_duplicate(
    simulated_run: tuple[AtlasDaemon, FaultyProxy, Simulator, RunReport],
) -> None:
    """The final responses report every event accepted or duplicate, none rejected.

    A batch whose first response was lost gets `duplicate` on the resend, so
    the duplicates are at least the events of one dropped batch.
    """
    _, _, simulator, report = simulated_run
    assert set(report.statuses) <= {"accepted", "duplicate"}
    assert report.statuses["accepted"] + report.statuses["duplicate"] == len(simulator.plan.events)
    assert report.statuses["duplicate"] > 0


def test_crash_free_matches_tally(simulated_run: tuple[AtlasDaemon, FaultyProxy, Simulator, RunReport]) -> None:
    """Sessions, crashes and devices per release in the store equal the simulator's own tally."""
    daemon, _, simulator, _ = simulated_run
    stored = stored_releases(daemon.data_dir)
    expected = {
        release: StoredRelease(
            tally.sessions, tally.crashed_sessions, len(tally.devices), len(tally.crashed_devices)
        )
        for release, tally in simulator.plan.tally.items()
    }
    assert sum(release.crashed_sessions for release in expected.values()) > 0
    assert stored == expected


def test_summary_matches_tally(simulated_run: tuple[AtlasDaemon, FaultyProxy, Simulator, RunReport]) -> None:
    """`build_summary` reports the crash-free session and user rates of the simulator's tally per release."""
    daemon, _, simulator, _ = simulated_run
    summary = reported_summary(daemon.data_dir, daemon.data_dir.parent / "copy", simulator.config)
    reported = {
        (row.version, row.platform): (row.sessions, row.crash_free_sessions_pct, row.crash_free_users_pct)
        for row in summary.by_release
    }
    expected = {
        release: (
            tally.sessions,
            pytest.approx(tally.crash_free_sessions_pct, abs=1e-4),
            pytest.approx(tally.crash_free_users_pct, abs=1e-4),
        )
        for release, tally in simulator.plan.tally.items()
    }
    assert reported == expected


def test_summary_overall_crash_free(simulated_run: tuple[AtlasDaemon, FaultyProxy, Simulator, RunReport]) -> None:
    """The summary's overall crash-free rates equal the ones computed from the simulator's tally."""
    daemon, _, simulator, _ = simulated_run
    summary = reported_summary(daemon.data_dir, daemon.data_dir.parent / "copy-overall", simulator.config)
    tallies = simulator.plan.tally.values()
    sessions = sum(tally.sessions for tally in tallies)
    crashed = sum(tally.crashed_sessions for tally in tallies)
    devices = set().union(*(tally.devices for tally in tallies))
    crashed_devices = set().union(*(tally.crashed_devices for tally in tallies))
    errored = sum(tally.errored_sessions for tally in tallies)
    assert summary.sessions.count == sessions
    assert summary.sessions.crashed == crashed
    assert summary.sessions.errored == errored
    assert summary.crash_free.sessions_pct == pytest.approx(100.0 * (1 - crashed / sessions), abs=1e-4)
    assert summary.crash_free.users_pct == pytest.approx(100.0 * (1 - len(crashed_devices) / len(devices)), abs=1e-4)
