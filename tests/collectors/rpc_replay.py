"""A local HTTP(S) server on 127.0.0.1 that replays scripted JSON-RPC and HTTP responses.

Tests of the node and probe collectors point them at this server instead of a real
Bitcoin Core or Ethereum node. Each path has a handler: `JsonRpcNode` responds to
JSON-RPC requests from a table of method results, in the Ethereum (JSON-RPC 2.0)
or Bitcoin Core legacy style, and `Fixed` sends one fixed HTTP reply. The server
records every request and the highest number of requests it served at once.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import pytest

__all__ = ["Fixed", "HttpReply", "JsonRpcNode", "ReplayServer", "error", "replay", "result"]


@dataclass(frozen=True)
class HttpReply:
    """A raw HTTP reply."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    """Seconds to wait before responding."""


def result(value: object) -> dict[str, object]:
    """Return the table entry of a method that succeeds with `value`."""
    return {"result": value}


def error(code: int, message: str) -> dict[str, object]:
    """Return the table entry of a method that fails with a JSON-RPC error object."""
    return {"error": {"code": code, "message": message}}


Handler = Callable[[str, dict[str, str], bytes], HttpReply]


@dataclass
class Fixed:
    """Always the same reply, whatever the request."""

    reply: HttpReply

    def __call__(self, path: str, headers: dict[str, str], body: bytes) -> HttpReply:
        return self.reply


@dataclass
class JsonRpcNode:
    """A scripted JSON-RPC node.

    `answers` maps a method to a table entry (`result(...)`, `error(...)`, a raw
    `HttpReply`, or a dict written as it is, such as `{"error": {...}}` without a
    result). A missing method gets -32601.
    """

    answers: dict[str, object]
    style: Literal["ethereum", "bitcoin"] = "ethereum"
    batch: Literal["accept", "reject_object", "reject_http"] = "accept"
    """How the node responds to a batch request."""
    password: str | None = None
    """When set, requests need basic auth with this password (any user), else HTTP 401."""
    delay: float = 0.0
    """Seconds to wait before each answer."""
    calls: list[str] = field(default_factory=list)
    """Methods called so far, in order; a batch adds all of its methods."""
    batches: int = 0
    """Batch requests received."""

    def __call__(self, path: str, headers: dict[str, str], body: bytes) -> HttpReply:
        if self.delay:
            time.sleep(self.delay)
        if self.password is not None and not _authorized(headers, self.password):
            return HttpReply(401, b"", "text/plain")
        request = json.loads(body)
        if isinstance(request, list):
            return self._batch(request)
        self.calls.append(request["method"])
        return self._single(request)

    def _batch(self, requests: list[dict[str, object]]) -> HttpReply:
        self.batches += 1
        if self.batch == "reject_object":
            body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch requests are not supported"}}
            return HttpReply(200, json.dumps(body).encode())
        if self.batch == "reject_http":
            return HttpReply(400, b"Bad Request: batching disabled", "text/plain")
        self.calls.extend(str(request["method"]) for request in requests)
        answers = []
        for request in requests:
            entry = self._entry(str(request["method"]))
            if isinstance(entry, HttpReply):
                return entry
            answers.append(self._answer(request, entry))
        return HttpReply(200, json.dumps(answers).encode())

    def _single(self, request: dict[str, object]) -> HttpReply:
        entry = self._entry(str(request["method"]))
        if isinstance(entry, HttpReply):
            return entry
        answer = self._answer(request, entry)
        status = 200
        if self.style == "bitcoin" and answer.get("error") is not None:
            # Bitcoin Core's legacy mode: HTTP 404 for an unknown method, 500 for other errors.
            status = 404 if answer["error"]["code"] == -32601 else 500
        return HttpReply(status, json.dumps(answer).encode())

    def _entry(self, method: str) -> object:
        return self.answers.get(method, error(-32601, "Method not found"))

    def _answer(self, request: dict[str, object], entry: object) -> dict[str, object]:
        assert isinstance(entry, dict)
        answer: dict[str, object] = {"id": request.get("id")}
        if self.style == "bitcoin":
            answer.update({"result": None, "error": None})
        else:
            answer["jsonrpc"] = "2.0"
        answer.update(entry)
        return answer


class ReplayServer:
    """A threaded HTTP server on 127.0.0.1 with one handler per path."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, str]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._tls = tls is not None
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str = "/") -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> ReplayServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _serve(self, method: str, path: str, headers: dict[str, str], body: bytes) -> HttpReply:
        with self._lock:
            self.requests.append((method, path))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            handler = self.routes.get(path)
            if handler is None:
                return HttpReply(404, b"not found", "text/plain")
            return handler(path, headers, body)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self._answer("POST")

            def do_GET(self) -> None:
                self._answer("GET")

            def do_HEAD(self) -> None:
                self._answer("HEAD")

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {key.lower(): value for key, value in self.headers.items()}
                reply = server._serve(method, self.path, headers, body)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", reply.content_type)
                    self.send_header("content-length", str(len(reply.body)))
                    if reply.status == 401:
                        self.send_header("www-authenticate", 'Basic realm="jsonrpc"')
                    self.end_headers()
                    if method != "HEAD":
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test), which is the point

            def log_message(self, format: str, *args: object) -> None:
                return

        return _Handler


def _authorized(headers: dict[str, str], password: str) -> bool:
    value = headers.get("authorization", "")
    if not value.startswith("Basic "):
        return False
    _user, _, given = base64.b64decode(value[6:]).decode().partition(":")
    return given == password


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    """A started plain-HTTP `ReplayServer`, stopped after the test."""
    server = ReplayServer().start()
    try:
        yield server
    finally:
        server.stop()
