"""HTTP(S) endpoint probe: one request per cycle, judged by status code and optional body text.

`atlas_tui.collection.build_collectors` creates one `ProbeCollector` per entry of
`collectors.probes`. Each cycle sends the configured request on a new connection,
so the latency includes connecting and the TLS handshake, as a client would see it.
Samples are labelled `target=<probe name>`:

| metric | unit / values |
|---|---|
| `probe_up` | 1 when the status is expected and the body contains `body_contains`, else 0 |
| `probe_latency_ms` | time until the body was read; only when a response arrived |
| `probe_status_code` | HTTP status; only when a response arrived |
| `tls_cert_days_left` | days until the server certificate's `notAfter`, negative once expired; https only |

Invariants:

- A request that fails (refused, timed out, TLS error) gives `probe_up` 0 and no
  latency or status sample; the reason is in `unavailable_sources()["request"]`.
- `tls_cert_days_left` comes from the certificate of the probe's own connection.
  When that connection failed, for example on an expired or untrusted certificate,
  one extra TLS handshake without verification reads the certificate, so an expiry
  still shows. Nothing is sent over that connection.
- At most `MAX_BODY_BYTES` of the body are read and searched.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from atlas_tui.nodes_config import ProbeConfig
from collectors.base import Sample
from collectors.source_log import SourceLog
from collectors.x509_validity import CertificateParseError, certificate_not_after

__all__ = ["MAX_BODY_BYTES", "PROBE_METRICS", "ProbeCollector"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""Bytes of the response body read and searched for `body_contains`."""

PROBE_METRICS = frozenset({"probe_up", "probe_latency_ms", "probe_status_code", "tls_cert_days_left"})
"""Every metric name this collector writes, for rule checks that know metric names in advance."""

SECONDS_PER_DAY = 86400.0


@dataclass(slots=True)
class _Response:
    status: int
    latency_ms: float
    body: str
    certificate: bytes | None


class ProbeCollector:
    """Request one URL per cycle and report whether the response was as expected."""

    def __init__(self, probe: ProbeConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """Create the collector; the TLS settings are loaded on the first cycle.

        Args:
            probe: The probe's config.
            transport: httpx transport, for tests; None uses the network.
        """
        self.name = f"probe:{probe.name}"
        self.interval = probe.interval
        self._probe = probe
        self._transport = transport
        self._https = urlsplit(probe.url).scheme == "https"
        self._verify: ssl.SSLContext | bool | None = None
        self._sources = SourceLog(self.name)
        self._up: bool | None = None

    @property
    def cycle_timeout(self) -> float:
        """Seconds the scheduler allows a cycle: the request, a certificate handshake, and a margin."""
        return min(2 * self._probe.timeout + 1.0, self.interval)

    async def collect(self, now: float) -> list[Sample]:
        """Send the request once and return the samples stamped with `now`."""
        target = self._probe.name
        response, problem = await self._request()
        certificate = response.certificate if response else None
        if self._https and certificate is None:
            certificate = await self._handshake_certificate()

        up = response is not None and self._expected(response)
        self._sources.update({"request": problem} if problem else {})
        self._log_change(up, response)
        samples = [Sample.of("probe_up", int(up), now, target=target)]
        if response is not None:
            samples.append(Sample.of("probe_latency_ms", response.latency_ms, now, target=target))
            samples.append(Sample.of("probe_status_code", response.status, now, target=target))
        days_left = self._days_left(certificate, now)
        if days_left is not None:
            samples.append(Sample.of("tls_cert_days_left", days_left, now, target=target))
        return samples

    def unavailable_sources(self) -> Mapping[str, str]:
        """Return `{"request": reason}` when the latest request failed, else nothing."""
        return dict(self._sources.current)

    async def _request(self) -> tuple[_Response | None, str | None]:
        """Send the request; return the response, or None and why it failed."""
        timeout = self._probe.timeout
        try:
            verify = await self._tls_verify()
        except OSError as err:
            return None, (
                f"cannot load ca_file {self._probe.ca_file}: {err}; check the path and that it contains PEM certificates"
            )
        try:
            async with asyncio.timeout(timeout):
                return await self._send(verify), None
        except (TimeoutError, httpx.TimeoutException):
            return None, f"timed out after {timeout:g}s"
        except httpx.TransportError as err:
            cause = err.__cause__ or err.__context__ or err
            return None, f"{type(err).__name__}: {cause}"

    async def _send(self, verify: ssl.SSLContext | bool) -> _Response:
        async with httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(self._probe.timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=0),
            transport=self._transport,
            follow_redirects=False,
        ) as client:
            began = time.perf_counter()
            async with client.stream(self._probe.method, self._probe.url) as response:
                certificate = _peer_certificate(response)
                body = await _read_body(response)
            latency_ms = (time.perf_counter() - began) * 1000.0
        return _Response(response.status_code, latency_ms, body, certificate)

    async def _tls_verify(self) -> ssl.SSLContext | bool:
        """Build the TLS settings once; loading a CA file reads the disk, so it runs in a thread."""
        if self._verify is None:
            self._verify = await asyncio.to_thread(_tls_settings, self._probe)
        return self._verify

    async def _handshake_certificate(self) -> bytes | None:
        """Read the server certificate with a verification-free handshake; None when that fails too."""
        parts = urlsplit(self._probe.url)
        host = parts.hostname or ""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            async with asyncio.timeout(self._probe.timeout):
                _, writer = await asyncio.open_connection(host, parts.port or 443, ssl=context, server_hostname=host)
        except (OSError, TimeoutError, ssl.SSLError) as err:
            logger.debug("certificate handshake failed collector=%s error=%s", self.name, err)
            return None
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        finally:
            writer.close()

    def _expected(self, response: _Response) -> bool:
        if response.status not in self._probe.expected_statuses:
            return False
        expected_text = self._probe.body_contains
        return expected_text is None or expected_text in response.body

    def _days_left(self, certificate: bytes | None, now: float) -> float | None:
        if certificate is None:
            return None
        try:
            not_after = certificate_not_after(certificate)
        except CertificateParseError as err:
            logger.warning("certificate unreadable collector=%s error=%s", self.name, err)
            return None
        return (not_after - now) / SECONDS_PER_DAY

    def _log_change(self, up: bool, response: _Response | None) -> None:
        if up == self._up:
            return
        self._up = up
        if up:
            logger.info("probe up target=%s", self._probe.name)
        else:
            status = response.status if response is not None else None
            logger.warning("probe down target=%s status=%s", self._probe.name, status)


def _tls_settings(probe: ProbeConfig) -> ssl.SSLContext | bool:
    """Return httpx's `verify` for the probe. Blocking when it loads a CA file."""
    if not probe.verify_tls:
        return False
    if probe.ca_file is not None:
        return ssl.create_default_context(cafile=str(probe.ca_file))
    # Built once and reused: letting httpx build it per request would load the CA
    # bundle on every cycle.
    return httpx.create_ssl_context()


def _peer_certificate(response: httpx.Response) -> bytes | None:
    """Return the DER certificate of the response's TLS connection, or None for plain HTTP."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True)


async def _read_body(response: httpx.Response) -> str:
    """Read at most `MAX_BODY_BYTES` of the body and decode it leniently."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    raw = b"".join(chunks)[:MAX_BODY_BYTES]
    try:
        return raw.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:
        # The server named a charset Python does not know.
        return raw.decode("utf-8", errors="replace")
