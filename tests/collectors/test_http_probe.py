"""The HTTP probe against local HTTP and HTTPS servers on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.nodes_config import ProbeConfig
from collectors.base import Sample
from collectors.http_probe import ProbeCollector
from tests.collectors.rpc_replay import Fixed, HttpReply, ReplayServer, replay
from tests.collectors.tls_certs import TlsFiles, make_certificate, server_context

__all__ = ["replay"]


def probe(url: str, **options: object) -> ProbeCollector:
    """Return a probe collector for `url` named `api`."""
    fields: dict[str, object] = {"name": "api", "url": url, "timeout": 2, "interval": 30}
    fields.update(options)
    return ProbeCollector(ProbeConfig.model_validate(fields))


def value(samples: list[Sample], name: str) -> float | None:
    """Return the value of the sample named `name`, or None when there is none."""
    found = [sample.value for sample in samples if sample.name == name]
    return found[0] if found else None


@pytest.fixture
def certificate(tmp_path: Path) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1, valid for 30 days."""
    return make_certificate(tmp_path, days=30)


@pytest.fixture
def https(certificate: TlsFiles) -> Iterator[ReplayServer]:
    """A started HTTPS `ReplayServer` serving the 30-day certificate."""
    server = ReplayServer(tls=server_context(certificate)).start()
    try:
        yield server
    finally:
        server.stop()


async def test_ok_response_up(replay: ReplayServer) -> None:
    """A 200 response is up, with its status code and latency, labelled by target."""
    replay.routes["/health"] = Fixed(HttpReply(200, b'{"status": "ok"}'))

    samples = await probe(replay.url("/health")).collect(time.time())

    assert value(samples, "probe_up") == 1
    assert value(samples, "probe_status_code") == 200
    assert value(samples, "probe_latency_ms") is not None
    assert value(samples, "tls_cert_days_left") is None
    assert {sample.labels for sample in samples} == {(("target", "api"),)}


async def test_server_error_down(replay: ReplayServer) -> None:
    """A 500 response is down, and its status code is still reported."""
    replay.routes["/health"] = Fixed(HttpReply(500, b"boom", "text/plain"))

    samples = await probe(replay.url("/health")).collect(time.time())

    assert value(samples, "probe_up") == 0
    assert value(samples, "probe_status_code") == 500


async def test_expected_status_list(replay: ReplayServer) -> None:
    """A status in the expected list counts as up."""
    replay.routes["/login"] = Fixed(HttpReply(302, b""))

    samples = await probe(replay.url("/login"), expected_status=[200, 302]).collect(time.time())

    assert value(samples, "probe_up") == 1


async def test_timeout_down_without_status(replay: ReplayServer) -> None:
    """A server slower than the timeout is down, with no status or latency sample."""
    replay.routes["/slow"] = Fixed(HttpReply(200, b"late", delay=1.0))
    collector = probe(replay.url("/slow"), timeout=0.3)

    samples = await collector.collect(time.time())

    assert value(samples, "probe_up") == 0
    assert value(samples, "probe_status_code") is None
    assert value(samples, "probe_latency_ms") is None
    assert "timed out" in collector.unavailable_sources()["request"]


@pytest.mark.parametrize(("body", "up"), [(b"wallet: ready", 1), (b"wallet: degraded", 0)])
async def test_body_substring(replay: ReplayServer, body: bytes, up: int) -> None:
    """With body_contains, a 200 is up only when the body contains the text."""
    replay.routes["/status"] = Fixed(HttpReply(200, body, "text/plain"))

    samples = await probe(replay.url("/status"), body_contains="ready").collect(time.time())

    assert value(samples, "probe_up") == up


async def test_head_method(replay: ReplayServer) -> None:
    """The configured method is the one sent."""
    replay.routes["/"] = Fixed(HttpReply(200, b""))

    await probe(replay.url("/"), method="HEAD").collect(time.time())

    assert replay.requests == [("HEAD", "/")]


async def test_refused_down() -> None:
    """A port without a listener is down and names the failure."""
    collector = probe("http://127.0.0.1:9/")

    samples = await collector.collect(time.time())

    assert value(samples, "probe_up") == 0
    assert "ConnectError" in collector.unavailable_sources()["request"]


async def test_https_days_left(https: ReplayServer, certificate: TlsFiles) -> None:
    """An HTTPS target trusted through ca_file reports the certificate's days left."""
    https.routes["/"] = Fixed(HttpReply(200, b"ok"))

    samples = await probe(https.url("/"), ca_file=str(certificate.cert)).collect(time.time())

    assert value(samples, "probe_up") == 1
    assert value(samples, "tls_cert_days_left") == pytest.approx(30, abs=0.01)


async def test_https_untrusted_still_reports_days(https: ReplayServer) -> None:
    """An untrusted certificate makes the probe down, but its days left are still read."""
    https.routes["/"] = Fixed(HttpReply(200, b"ok"))
    collector = probe(https.url("/"))

    samples = await collector.collect(time.time())

    assert value(samples, "probe_up") == 0
    assert value(samples, "tls_cert_days_left") == pytest.approx(30, abs=0.01)
    assert "CERTIFICATE_VERIFY_FAILED" in collector.unavailable_sources()["request"]


async def test_https_without_verification(https: ReplayServer) -> None:
    """verify_tls false accepts the self-signed certificate and still reports its days."""
    https.routes["/"] = Fixed(HttpReply(200, b"ok"))

    samples = await probe(https.url("/"), verify_tls=False).collect(time.time())

    assert value(samples, "probe_up") == 1
    assert value(samples, "tls_cert_days_left") == pytest.approx(30, abs=0.01)


async def test_days_left_from_now(https: ReplayServer, certificate: TlsFiles) -> None:
    """Days left are counted from the `now` of the cycle, negative once expired."""
    https.routes["/"] = Fixed(HttpReply(200, b"ok"))

    samples = await probe(https.url("/"), ca_file=str(certificate.cert)).collect(time.time() + 40 * 86400)

    assert value(samples, "tls_cert_days_left") == pytest.approx(-10, abs=0.01)


async def test_missing_ca_file(https: ReplayServer, tmp_path: Path) -> None:
    """A ca_file that does not exist makes the probe down with a reason naming the file."""
    collector = probe(https.url("/"), ca_file=str(tmp_path / "nope.pem"))

    samples = await collector.collect(time.time())

    assert value(samples, "probe_up") == 0
    assert "nope.pem" in collector.unavailable_sources()["request"]
