"""Debian's Prometheus and Alertmanager as real servers on 127.0.0.1, and a status page to probe.

`MonitoringServer.start` runs `prometheus` or `prometheus-alertmanager` with a
config written to a temporary directory, its own storage directory and a free
port, and waits until `/-/ready` returns 200. `stop` sends SIGTERM, then SIGKILL.
Configs are written as JSON, which both servers read as YAML.

`require_binary` skips a test when a binary is missing and names the Debian package
and `make test`, which installs it as root. Under CI (`CI=true`) a missing binary
fails the test instead, because CI must run these tests.

`StatusPage` is a small HTTP server whose GET replies with a status the test sets,
so an ATLAS HTTP probe can be made to fail and recover on demand.

Every wait here is bounded polling.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import poll

__all__ = [
    "ALERTMANAGER",
    "PROMETHEUS",
    "MonitoringServer",
    "ServerKind",
    "StatusPage",
    "free_port",
    "require_binary",
    "wait_for",
]

LOCALHOST = "127.0.0.1"
READY_TIMEOUT = 20.0
"""Seconds a server may take until `/-/ready` returns 200 on a loaded machine."""


@dataclass(frozen=True)
class ServerKind:
    """One of the two servers: its binary, its Debian package and its storage flag."""

    binary: str
    package: str
    storage_flag: str
    extra_flags: tuple[str, ...] = ()


PROMETHEUS = ServerKind("prometheus", "prometheus", "--storage.tsdb.path")
"""The Prometheus server; `promtool` comes in the same package."""

ALERTMANAGER = ServerKind(
    "prometheus-alertmanager",
    "prometheus-alertmanager",
    "--storage.path",
    # An empty cluster address turns off the gossip listener, which would bind 0.0.0.0:9094.
    ("--cluster.listen-address=",),
)
"""Alertmanager, without its cluster listener."""


def require_binary(name: str, package: str) -> str:
    """Return the path of `name`, or skip the test without it (fail it under CI)."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} not found: install Debian's {package} package (`make test` installs it when run as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


class MonitoringServer:
    """A running Prometheus or Alertmanager process and its log file."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.proc = proc
        self.url = url
        """Base URL, `http://127.0.0.1:<port>`."""
        self.log_path = log_path
        self.client = httpx.Client(base_url=url, timeout=5.0, trust_env=False)

    @classmethod
    def start(cls, kind: ServerKind, workdir: Path, config: Mapping[str, Any]) -> MonitoringServer:
        """Write `config`, start the server on a free port and wait until it is ready.

        Raises:
            AssertionError: the server exited or was not ready within `READY_TIMEOUT`.
        """
        binary = require_binary(kind.binary, kind.package)
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "config.yml"
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        url = f"http://{LOCALHOST}:{free_port()}"
        command = [
            binary,
            f"--config.file={config_path}",
            f"{kind.storage_flag}={workdir / 'data'}",
            f"--web.listen-address={url.removeprefix('http://')}",
            "--log.level=warn",
            *kind.extra_flags,
        ]
        log_path = workdir / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = cls(proc, url, log_path)
        if not poll(server.ready, READY_TIMEOUT, interval=0.1):
            server.stop()
            raise AssertionError(f"{kind.binary} not ready within {READY_TIMEOUT:g} s:\n{server.log()}")
        return server

    def ready(self) -> bool:
        """Return True once `/-/ready` returns 200, and fail when the process has exited."""
        assert self.proc.poll() is None, f"server exited with {self.proc.returncode}:\n{self.log()}"
        try:
            return self.client.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def get_json(self, path: str, **params: str) -> Any:
        """GET `path` and return the parsed JSON body, asserting a 200 status."""
        response = self.client.get(path, params=params)
        assert response.status_code == 200, f"GET {path} gave {response.status_code}: {response.text}"
        return response.json()

    def log(self) -> str:
        """Return everything the server has logged."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """Stop the server: SIGTERM, and SIGKILL after 5 s."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class StatusPage:
    """An HTTP server on 127.0.0.1 whose GET replies `status`, settable while it runs."""

    def __init__(self, status: int = 200) -> None:
        """Bind a free port now; serving starts with `start()`."""
        self.status = status
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"ok" if page.status < 400 else b"failing"
                self.send_response(page.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="e2e-status-page", daemon=True)

    @property
    def url(self) -> str:
        """URL of the page."""
        return f"http://{LOCALHOST}:{self._server.server_address[1]}/health"

    def start(self) -> StatusPage:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 0.2 s until it is true, or fail naming `what` after `timeout` seconds."""
    assert poll(condition, timeout, interval=0.2), f"{what} not seen within {timeout:g} s"
