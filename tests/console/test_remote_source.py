"""`RemoteSource` against the real API app served by uvicorn on 127.0.0.1.

One store is read twice: by `LocalSource` directly and by `RemoteSource` through
the HTTP API. The view models must be equal, for every chart window, including
windows served from rollups after raw samples expired. The link tests stop, restart
and misconfigure the same real server. The API runs in the test's event loop, so
every blocking `RemoteSource` call runs in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from atlas_tui.alerts.actions import AlertNotFoundError, acknowledge
from atlas_tui.alerts.errors import AlertStateError
from atlas_tui.alerts.service import AlertService
from atlas_tui.api import ApiServer, create_api
from atlas_tui.config import Config
from atlas_tui.console.local_alerts import read_alert_detail, read_alerts
from atlas_tui.console.local_source import LocalSource
from atlas_tui.console.remote_client import AuthRejectedError, LinkDownError, TokenFileError
from atlas_tui.console.remote_source import RemoteSource
from atlas_tui.console.remote_views import chart_step_ms
from atlas_tui.console.time_windows import WINDOWS
from collectors.base import CollectorStatus, Sample
from storage.db import open_store
from storage.metrics import apply_retention, range_query, update_rollups, write_samples
from storage.outbox import AttemptOutcome, ChannelUpdate, next_due, record_attempt
from storage.status import Heartbeat, write_collector_statuses, write_heartbeat
from tests.alerts.receivers import Certificate, make_certificate
from tests.api_tokens import issue_token

NOW = 1_750_000_000.0
"""Clock of the API app and `now` of every read."""
EVALUATED = NOW - 600
DAY = 86400.0
OTHER_PID = 999_999
ACKED_BY = "oncall-ann"

_T = TypeVar("_T")

CONFIG = Config.model_validate(
    {
        "alert_rules": [
            {"id": "disk_full", "name": "Disk full", "condition": "disk_usage > 90", "severity": "critical",
             "channels": ["email", "slack"], "annotations": {"summary": "a disk is almost full"}},
            {"id": "cpu_busy", "name": "CPU busy", "condition": "cpu_usage > 5", "severity": "warning",
             "for": "1h"},
            {"id": "load_high", "name": "Load high", "condition": "load_1m > 0.1", "severity": "error"},
            {"id": "typo", "name": "Typo", "condition": "cpu_usge > 1", "severity": "info"},
        ],
        "channels": {
            "email": {"type": "email", "host": "127.0.0.1", "from": "atlas@example.org", "to": ["ops@example.org"]},
            "slack": {"type": "slack", "webhook_url_env": "ATLAS_TEST_SLACK_URL"},
        },
    }
)

STATUSES = [
    CollectorStatus(name="node:geth-1", interval=15.0, last_run=NOW - 5, unavailable={"rpc": "connection refused"}),
    CollectorStatus(name="probe:shop", interval=30.0, last_run=NOW - 5, unavailable={"request": "HTTP 503"}),
    CollectorStatus(name="system", interval=5.0, last_run=NOW - 1, runs=10),
]


def _history_samples() -> Iterator[Sample]:
    """Eight days of host metrics every 5 minutes, then every 10 s over the last 15 minutes."""
    times = [NOW - 8 * DAY + step * 300 for step in range(int(8 * DAY / 300) - 3)]
    times += [NOW - 900 + step * 10 for step in range(91)]
    for index, ts in enumerate(times):
        wave = (index * 7) % 37
        yield Sample.of("cpu_usage", 10.0 + wave / 3, ts)
        yield Sample.of("cpu_usage", 99.0 - wave, ts, cpu="0")
        yield Sample.of("memory_usage", 40.0 + wave / 7, ts)
        yield Sample.of("swap_usage", 1.5, ts)
        yield Sample.of("load_1m", 0.25 + wave / 10, ts)
        yield Sample.of("process_count", 200.0 + wave, ts)
        for rank, mount in enumerate(("/", "/home", "/srv", "/data")):
            yield Sample.of("disk_usage", 95.0 if mount == "/data" else 10.0 * (rank + 1) + wave / 11, ts, mount=mount)
        for interface, rate in (("eth0", 1000.0), ("wlan0", 333.3), ("lo", 1e9)):
            yield Sample.of("net_recv_bytes_per_second", rate + wave, ts, interface=interface)
            yield Sample.of("net_sent_bytes_per_second", rate / 10 + wave, ts, interface=interface)
        for node, lag in (("geth-1", 0.0), ("btc-1", 3.0)):
            yield Sample.of("node_block_lag", lag + wave % 4, ts, node=node)


def _latest_samples() -> list[Sample]:
    """The newest node and probe cycle, one timestamp each, as their collectors write them."""
    return [
        Sample.of("node_health", 0.0, NOW - 5, node="geth-1"),
        Sample.of("node_block_height", 19_000_000.0, NOW - 5, node="geth-1"),
        Sample.of("node_peer_count", 25.0, NOW - 5, node="geth-1"),
        Sample.of("node_health", 2.0, NOW - 5, node="btc-1"),
        Sample.of("probe_up", 0.0, NOW - 5, target="shop"),
        Sample.of("probe_status_code", 503.0, NOW - 5, target="shop"),
        Sample.of("probe_latency_ms", 41.5, NOW - 5, target="shop"),
    ]


def _fail_channels(data_dir: Path, at: float) -> None:
    """Record one failed attempt on every channel at `at`, so they have been down since then."""
    conn = open_store(data_dir)
    try:
        for channel in ("email", "slack"):
            row = next_due(conn, channel, at)
            assert row is not None
            outcome = AttemptOutcome("pending", "retry", "connection refused", next_attempt_at=at + 60,
                                     error_class="connect_refused")
            record_attempt(conn, row.id, channel, outcome, ChannelUpdate("failing", success=False), now=at)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with rolled-up history, expired raw samples, nodes, probes, alerts and failing channels."""
    data_dir = tmp_path_factory.mktemp("remote-store")
    conn = open_store(data_dir)
    try:
        write_samples(conn, list(_history_samples()))
        update_rollups(conn, NOW)
        apply_retention(conn, NOW, raw_keep=DAY, rollup_keep=7 * DAY)
        write_samples(conn, _latest_samples())
        write_collector_statuses(conn, STATUSES)
        write_heartbeat(conn, Heartbeat(OTHER_PID, "db-host", NOW - 3600, NOW - 1, "0.1.0"))
    finally:
        conn.close()
    service = AlertService(CONFIG, data_dir, statuses=list)
    service.evaluate_once(EVALUATED)
    service.close()
    _fail_channels(data_dir, NOW - 400)
    conn = open_store(data_dir)
    try:
        load = next(record for record in read_alerts(conn, CONFIG, NOW).rows if record.rule_id == "load_high")
        acknowledge(conn, load.alert_id, by=ACKED_BY, message="looking", now=NOW - 60, config=CONFIG)
    finally:
        conn.close()
    return data_dir


@asynccontextmanager
async def serving(data_dir: Path, port: int = 0, tls: Certificate | None = None) -> AsyncIterator[ApiServer]:
    """Serve the API for `data_dir` on 127.0.0.1 until the block ends: on `port` (0: a free one), with `tls` if given."""
    app = create_api(
        data_dir, started_at=NOW - 3600, version="t", statuses_provider=lambda: STATUSES,
        stale_after=15.0, clock=lambda: NOW, config=CONFIG,
    )  # fmt: skip
    certificate = {"tls_cert": tls.cert, "tls_key": tls.key} if tls is not None else {}
    server = ApiServer(app, port, **certificate)
    server.bind()
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield server
    finally:
        server.stop()
        await asyncio.wait_for(task, timeout=5.0)


def token_file(directory: Path, data_dir: Path, scopes: str, name: str) -> Path:
    """Create a token with `scopes` in the store and write it to a file the remote source reads."""
    path = directory / f"{name}.token"
    path.write_text(issue_token(data_dir, scopes, name) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def read_ack_token(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A token file with the read and ack scopes."""
    return token_file(tmp_path_factory.mktemp("tokens"), store, "read,ack", "console")


def local_source(data_dir: Path) -> LocalSource:
    """A started local source that only reads, as a console beside a live daemon does."""
    source = LocalSource(CONFIG, data_dir, embedded=False)
    source.start(NOW)
    return source


async def in_thread(call: Callable[..., _T], *args: object) -> _T:
    """Run one blocking source call in a thread, so the server in this loop can respond to it."""
    return await asyncio.to_thread(call, *args)


async def test_chart_step_matches_store(store: Path) -> None:
    """For every chart window, the step sent to the API equals the bucket width `range_query` picks for 240 points."""
    tiers = set()
    conn = open_store(store)
    try:
        for window in WINDOWS:
            start = NOW - window.seconds
            ranges = range_query(conn, "cpu_usage", start, NOW, labels={}, max_points=240)
            assert ranges, window.label
            assert chart_step_ms(start, NOW) == round(ranges[0].resolution * 1000), window.label
            tiers.add(ranges[0].tier)
    finally:
        conn.close()
    assert tiers == {"raw", "minute"}


async def test_snapshots_equal_local(store: Path, read_ack_token: Path) -> None:
    """Rows, charts, nodes and probes read over HTTP equal the local store's, for all four windows."""
    local = local_source(store)
    try:
        async with serving(store) as server:
            remote = RemoteSource(f"http://127.0.0.1:{server.port}", read_ack_token)
            remote.start(NOW)
            try:
                for window in WINDOWS:
                    expected = local.snapshot(window.seconds, NOW)
                    actual = await in_thread(remote.snapshot, window.seconds, NOW)
                    assert actual.rows == expected.rows, window.label
                    assert actual.charts == expected.charts, window.label
                    assert actual.probes == expected.probes, window.label
                    assert actual.nodes == expected.nodes, window.label
            finally:
                remote.close()
    finally:
        local.close()
    assert len(expected.rows) > 8
    assert {chart.chart_id for chart in expected.charts} == {"cpu", "memory", "disk", "network", "lag"}
    assert [node.name for node in expected.nodes] == ["btc-1", "geth-1"]


async def test_header_shows_link(store: Path, read_ack_token: Path) -> None:
    """The remote header carries the daemon's state, the data age and a connected link to the URL."""
    local = local_source(store)
    try:
        expected = local.snapshot(300.0, NOW).header
    finally:
        local.close()
    async with serving(store) as server:
        url = f"http://127.0.0.1:{server.port}"
        remote = RemoteSource(url, read_ack_token)
        remote.start(NOW)
        try:
            header = (await in_thread(remote.snapshot, 300.0, NOW)).header
        finally:
            remote.close()
    assert header.link is not None
    assert (header.link.target, header.link.state, header.link.http_status) == (url, "connected", None)
    assert header.daemon_state == expected.daemon_state == "running"
    assert header.newest_sample_age == expected.newest_sample_age
    assert header.problem is None


async def test_alerts_equal_local(store: Path, read_ack_token: Path) -> None:
    """The alerts read over HTTP equals the local read: rows, counts, channels, banner and rule health."""
    conn = open_store(store)
    try:
        expected = read_alerts(conn, CONFIG, NOW)
    finally:
        conn.close()
    async with serving(store) as server:
        remote = RemoteSource(f"http://127.0.0.1:{server.port}", read_ack_token)
        remote.start(NOW)
        try:
            actual = await in_thread(remote.alerts, NOW)
        finally:
            remote.close()
    assert actual == expected
    assert {row.state for row in expected.rows} >= {"firing", "pending"}
    assert any(row.acked_by == ACKED_BY for row in expected.rows)
    assert expected.channels_down_for == 400.0
    assert [problem.rule_id for problem in expected.rule_problems] == ["typo"]


async def test_detail_equals_local(store: Path, read_ack_token: Path) -> None:
    """Alert details over HTTP equal the local ones, without the rule text and retry times the API lacks."""
    conn = open_store(store)
    try:
        alert_id = next(row.alert_id for row in read_alerts(conn, CONFIG, NOW).rows if row.rule_id == "disk_full")
        expected = read_alert_detail(conn, CONFIG, alert_id, NOW)
    finally:
        conn.close()
    assert expected is not None
    async with serving(store) as server:
        remote = RemoteSource(f"http://127.0.0.1:{server.port}", read_ack_token)
        remote.start(NOW)
        try:
            actual = await in_thread(remote.alert_detail, alert_id, NOW)
            missing = await in_thread(remote.alert_detail, "alert_999", NOW)
        finally:
            remote.close()
    deliveries = tuple(replace(delivery, next_attempt_at=None) for delivery in expected.deliveries)
    assert actual == replace(expected, condition="", annotations=(), deliveries=deliveries)
    assert len(expected.deliveries) == 2
    assert missing is None


async def test_ack_over_http(store: Path, tmp_path: Path) -> None:
    """Acknowledging and removing it go through the API as the token's name; unknown and wrong-state alerts are rejected."""
    tokens = token_file(tmp_path, store, "read,ack", "acker")
    async with serving(store) as server:
        remote = RemoteSource(f"http://127.0.0.1:{server.port}", tokens)
        remote.start(NOW)
        try:
            rows = (await in_thread(remote.alerts, NOW)).rows
            firing = next(row for row in rows if row.rule_id == "disk_full")
            pending = next(row for row in rows if row.state == "pending")
            row = await in_thread(remote.acknowledge, firing.alert_id, "on it", NOW)
            with pytest.raises(AlertNotFoundError):
                await in_thread(remote.acknowledge, "alert_999", "", NOW)
            with pytest.raises(AlertStateError, match="pending"):
                await in_thread(remote.acknowledge, pending.alert_id, "", NOW)
            cleared = await in_thread(remote.unacknowledge, firing.alert_id, NOW)
            with pytest.raises(AlertStateError):
                await in_thread(remote.unacknowledge, firing.alert_id, NOW)
            with pytest.raises(AlertNotFoundError):
                await in_thread(remote.unacknowledge, "alert_999", NOW)
        finally:
            remote.close()
    assert row.alert_id == firing.alert_id
    assert row.acked_by == "api:acker"
    assert cleared.acked_by is None


async def test_ack_without_scope(store: Path, tmp_path: Path) -> None:
    """A read-only token reads, but its acknowledgement gets 403 and the link stays connected."""
    tokens = token_file(tmp_path, store, "read", "viewer")
    async with serving(store) as server:
        remote = RemoteSource(f"http://127.0.0.1:{server.port}", tokens)
        remote.start(NOW)
        try:
            alert_id = (await in_thread(remote.alerts, NOW)).rows[0].alert_id
            with pytest.raises(AuthRejectedError, match="lacks the ack scope") as caught:
                await in_thread(remote.acknowledge, alert_id, "", NOW)
            header = (await in_thread(remote.snapshot, 300.0, NOW)).header
        finally:
            remote.close()
    assert caught.value.status_code == 403
    assert str(tokens) in str(caught.value)
    assert header.link is not None
    assert header.link.state == "connected"


async def test_unknown_token_auth_failed(store: Path, tmp_path: Path) -> None:
    """An unknown token shows `auth_failed` with 401 and the token file; fixing the file recovers the link."""
    tokens = tmp_path / "stale.token"
    tokens.write_text("atlas_not_a_token\n", encoding="utf-8")
    async with serving(store) as server:
        remote = RemoteSource(f"http://127.0.0.1:{server.port}", tokens)
        remote.start(NOW)
        try:
            rejected = await in_thread(remote.snapshot, 300.0, NOW)
            alerts = await in_thread(remote.alerts, NOW)
            tokens.write_text(issue_token(store, "read", "fixed"), encoding="utf-8")
            # The API reloads its token table at most once a second.
            for _ in range(40):
                fixed = await in_thread(remote.snapshot, 300.0, NOW)
                if fixed.rows:
                    break
                await asyncio.sleep(0.1)
        finally:
            remote.close()
    link = rejected.header.link
    assert link is not None
    assert (link.state, link.http_status) == ("auth_failed", 401)
    assert rejected.header.problem is not None
    assert str(tokens) in rejected.header.problem
    assert rejected.rows == ()
    assert alerts.rows == ()
    assert fixed.header.link is not None
    assert fixed.header.link.state == "connected"
    assert fixed.rows != ()


async def test_link_recovers_after_restart(store: Path, read_ack_token: Path) -> None:
    """With the server stopped the source keeps its last data and reports `reconnecting`; a restart on the same port reconnects."""
    async with serving(store) as server:
        port = server.port
        remote = RemoteSource(f"http://127.0.0.1:{port}", read_ack_token, timeout=2.0)
        remote.start(NOW)
        first = await in_thread(remote.snapshot, 300.0, NOW)
        first_alerts = await in_thread(remote.alerts, NOW)
    try:
        down = await in_thread(remote.snapshot, 300.0, NOW + 5)
        down_alerts = await in_thread(remote.alerts, NOW + 5)
        with pytest.raises(LinkDownError, match="cannot reach"):
            await in_thread(remote.acknowledge, first_alerts.rows[0].alert_id, "", NOW + 5)
        async with serving(store, port) as _restarted:
            back = await in_thread(remote.snapshot, 300.0, NOW + 10)
    finally:
        remote.close()
    assert down.header.link is not None
    assert down.header.link.state == "reconnecting"
    assert down.header.problem is not None
    assert f"127.0.0.1:{port}" in down.header.problem
    assert down.rows == first.rows
    assert down.now == NOW + 5
    assert down.header.newest_sample_age == first.header.newest_sample_age + 5
    assert down_alerts.rows == first_alerts.rows
    assert down_alerts.now == NOW + 5
    assert back.header.link is not None
    assert back.header.link.state == "connected"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is needed to make a certificate")
async def test_https_with_ca_file(store: Path, read_ack_token: Path, tmp_path: Path) -> None:
    """Over https the link connects with `ca_file` trusting the daemon's certificate, and fails verification without it."""
    certificate = make_certificate(tmp_path, "atlas-daemon", "IP:127.0.0.1")
    async with serving(store, tls=certificate) as server:
        url = f"https://127.0.0.1:{server.port}"
        trusted = RemoteSource(url, read_ack_token, ca_file=certificate.cert)
        untrusted = RemoteSource(url, read_ack_token)
        trusted.start(NOW)
        untrusted.start(NOW)
        try:
            secure = await in_thread(trusted.snapshot, 300.0, NOW)
            unverified = await in_thread(untrusted.snapshot, 300.0, NOW)
        finally:
            trusted.close()
            untrusted.close()
    assert secure.header.link is not None
    assert secure.header.link.state == "connected"
    assert secure.rows != ()
    assert unverified.header.link is not None
    assert unverified.header.link.state == "reconnecting"
    assert unverified.header.problem is not None
    assert "CERTIFICATE_VERIFY_FAILED" in unverified.header.problem


def test_missing_token_file(tmp_path: Path) -> None:
    """A missing token file fails `start` with a message naming the file and how to make a token."""
    source = RemoteSource("http://127.0.0.1:9", tmp_path / "absent.token")
    with pytest.raises(TokenFileError, match="absent.token.*atlas api token create"):
        source.start(NOW)
    source.close()
