"""Real local receivers for channel tests: an HTTP server, aiosmtpd servers, a silent TCP port.

Everything listens on 127.0.0.1 on ports the OS assigns or that were just free.
Each receiver runs in its own thread, so a receiver that never responds blocks only
the request it keeps open, never the test's event loop. Certificates come from the
`openssl` command line, so no extra Python package is needed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from atlas_tui.alerts.channels.message import Annotations, Notice

__all__ = [
    "Certificate",
    "HttpReceiver",
    "ReceivedMail",
    "RecordedRequest",
    "Reply",
    "SilentServer",
    "SmtpRecorder",
    "StallingSmtpHandler",
    "make_certificate",
    "make_signed_certificate",
    "running_smtp",
    "sample_notice",
    "wait_until",
]

LOCALHOST = "127.0.0.1"


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll `condition` until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


# --- HTTP -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """The HTTP receiver's response to one request."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before responding."""
    hang: bool = False
    """Send no response; the connection stays open until the receiver stops."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request exactly as received."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes


class HttpReceiver:
    """A threaded HTTP server that records requests and replies from a script.

    Replies passed to `script` are used in order, one per request; after that every
    request gets `default`.
    """

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply()
        self.requests: list[RecordedRequest] = []
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((LOCALHOST, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL with a path, like a webhook URL."""
        return f"http://{LOCALHOST}:{self._server.server_address[1]}/hook/T000/B000/secret-token"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests."""
        with self._lock:
            self._script.extend(replies)

    def start(self) -> HttpReceiver:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held requests, stop serving and close the port."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._script.pop(0) if self._script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = receiver._next_reply(RecordedRequest("POST", self.path, headers, body))
                if reply.hang:
                    receiver._stopping.wait()
                    self.close_connection = True
                    return
                if reply.delay and receiver._stopping.wait(reply.delay):
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# --- TCP that never speaks --------------------------------------------------------------


class SilentServer:
    """Accepts TCP connections and never sends a byte (an SMTP server that never sends 220)."""

    def __init__(self) -> None:
        self._listener = socket.create_server((LOCALHOST, 0))
        self._listener.settimeout(0.1)
        self._connections: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="silent-server", daemon=True)

    @property
    def port(self) -> int:
        """The listening port."""
        return self._listener.getsockname()[1]

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        for connection in self._connections:
            connection.close()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._connections.append(connection)


# --- Certificates -----------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate and its key, as PEM files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_certificate(directory: Path, name: str, subject_alt_names: str) -> Certificate:
    """Create a self-signed EC certificate with the given subjectAltName (`IP:127.0.0.1`).

    The same command makes a CA for `make_signed_certificate`.
    """
    cert = directory / f"{name}.pem"
    key = directory / f"{name}.key"
    _openssl("req", "-x509", *_EC_KEY, "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/CN={name}", "-addext", f"subjectAltName={subject_alt_names}")
    return Certificate(cert=cert, key=key)


def make_signed_certificate(directory: Path, ca: Certificate, name: str, subject_alt_names: str) -> Certificate:
    """Create an EC server certificate signed by `ca`, with the given subjectAltName."""
    cert = directory / f"{name}.pem"
    key = directory / f"{name}.key"
    request = directory / f"{name}.csr"
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={subject_alt_names}\n", encoding="ascii")
    _openssl("req", "-new", *_EC_KEY, "-keyout", str(key), "-out", str(request), "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions))
    return Certificate(cert=cert, key=key)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


# --- SMTP -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """One message accepted by an aiosmtpd server."""

    sender: str
    recipients: list[str]
    data: bytes
    authenticated_as: str | None


class SmtpRecorder:
    """aiosmtpd handler that records every message; recipients in `refuse` get a 550."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.messages: list[ReceivedMail] = []
        self.refuse = refuse

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, login))
        return "250 2.0.0 OK queued as atlas-test-1"


class StallingSmtpHandler:
    """aiosmtpd handler that receives the message and never replies to the end of DATA."""

    def __init__(self) -> None:
        self.received = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.set()
        await asyncio.Event().wait()
        return "250 never sent"


SmtpMode = Literal["plain", "starttls", "implicit"]


@contextmanager
def running_smtp(
    handler: object,
    mode: SmtpMode,
    certificate: Certificate | None = None,
    *,
    users: dict[str, str] | None = None,
    auth_require_tls: bool = True,
    require_starttls: bool = False,
) -> Iterator[int]:
    """Run an aiosmtpd server on 127.0.0.1 and yield its port.

    Args:
        handler: The aiosmtpd handler (`SmtpRecorder`, `StallingSmtpHandler`).
        mode: `plain` (no TLS), `starttls` (offers STARTTLS) or `implicit` (TLS from the first byte).
        certificate: Server certificate for `starttls` and `implicit`.
        users: Logins accepted by AUTH; None disables AUTH.
        auth_require_tls: Offer AUTH only over TLS (aiosmtpd's default).
        require_starttls: Refuse MAIL before STARTTLS.
    """
    kwargs: dict[str, Any] = {"auth_require_tls": auth_require_tls}
    if users is not None:
        kwargs["authenticator"] = _authenticator(users)
    if mode == "starttls":
        assert certificate is not None
        kwargs["tls_context"] = certificate.server_context()
        kwargs["require_starttls"] = require_starttls
    if mode == "implicit":
        assert certificate is not None
        kwargs["ssl_context"] = certificate.server_context()
        # aiosmtpd counts only STARTTLS as TLS, so AUTH over implicit TLS needs this off.
        kwargs["auth_require_tls"] = False
    controller = Controller(handler, hostname=LOCALHOST, port=_free_port(), ready_timeout=5.0, **kwargs)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def _authenticator(users: dict[str, str]) -> Callable[..., AuthResult]:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        expected = users.get(auth_data.login.decode())
        accepted = expected is not None and expected == auth_data.password.decode()
        return AuthResult(success=accepted, handled=False, auth_data=auth_data if accepted else None)

    return check


def _free_port() -> int:
    # aiosmtpd's Controller needs the port before it starts, so one is reserved and released.
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


# --- Notices ----------------------------------------------------------------------------


def sample_notice(**overrides: Any) -> Notice:
    """A firing notice for `high_cpu` on atlas-01, with fields replaced by `overrides`."""
    fields: dict[str, Any] = {
        "notice_id": "ntc_0001",
        "kind": "firing",
        "rule_id": "high_cpu",
        "rule_name": "High CPU Usage",
        "fingerprint": "a81c0d2e4f7b9931",
        "incident_id": "inc_0001",
        "severity": "critical",
        "labels": {"host": "atlas-01"},
        "annotations": Annotations(summary="CPU above 80 %", runbook_url="https://wiki.example/runbooks/cpu"),
        "value": 93.4,
        "starts_at": 1736845920.0,
    }
    fields.update(overrides)
    return Notice(**fields)
