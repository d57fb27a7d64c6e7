"""HTTP receivers for end-to-end tests: a recording stand-in for Slack and for a webhook.

The daemon under test POSTs its notices here over real TCP on 127.0.0.1. Each
`HookServer` records every request it receives, including the ones it rejects
with an error status, so a test can count deliveries and compare `webhook-id` headers
across retries and daemon restarts. The reply status can be changed while the
server runs, and a `before_reply` callback runs after the request was read and
before any byte of the response is sent (used to SIGKILL the daemon inside that
window).

`reserve_port` holds a port that refuses connections, so a channel can point at a
receiver that is "not listening yet" and later get one on the same port.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Hit", "HookServer", "reserve_port"]

LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class Hit:
    """One request as the receiver read it, and the status of its response."""

    at: float
    """UTC epoch seconds when the request body was read."""
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    """The raw body, exactly as received; signatures are checked against it."""
    status: int
    """The HTTP status of the response, sent or (when the client was killed first) about to be sent."""

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str | None:
        """The Standard Webhooks `webhook-id` header, None when absent."""
        return self.headers.get("webhook-id")

    @property
    def webhook_kind(self) -> str:
        """The notice kind of a standard-format webhook body (`alert.firing` gives `firing`)."""
        return str(self.json()["type"]).removeprefix("alert.")

    @property
    def slack_kind(self) -> str:
        """The leading tag of a Slack message's `text` (`[FIRING] …` gives `FIRING`)."""
        text = str(self.json()["text"])
        return text[1 : text.index("]")] if text.startswith("[") else ""


class HookServer:
    """A threaded HTTP server on 127.0.0.1 that records every POST and answers `status`."""

    def __init__(self, port: int = 0, status: int = 200) -> None:
        """Bind the port now; serving starts with `start()`.

        Args:
            port: Port to bind; 0 lets the OS pick one.
            status: HTTP status of the replies until it is changed.
        """
        self.status = status
        self.before_reply: Callable[[Hit], None] | None = None
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._server = _Server((LOCALHOST, port), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="e2e-hook", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """A webhook URL on this server, whose path is a placeholder for a Slack token."""
        return f"http://{LOCALHOST}:{self.port}/services/T000/B000/e2e-token"

    def hits(self) -> list[Hit]:
        """Return a copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._hits)

    def start(self) -> HookServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> Hit:
        hit = Hit(at=time.time(), path=path, headers=headers, body=body, status=self.status)
        with self._lock:
            self._hits.append(hit)
        return hit

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                hit = receiver._record(self.path, headers, body)
                if receiver.before_reply is not None:
                    receiver.before_reply(hit)
                reply = b"ok" if hit.status < 300 else b"unavailable"
                try:
                    self.send_response(hit.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    # The client was killed before the reply; the request is recorded anyway.
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A SIGKILLed daemon resets its keep-alive connections; that is the test, not a failure.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def reserve_port() -> socket.socket:
    """Bind a free port on 127.0.0.1 without listening, so connections to it are refused.

    Close the returned socket right before a `HookServer` binds the same port.
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind((LOCALHOST, 0))
    return holder
