"""Fixtures that start `atlas daemon` as a real subprocess on 127.0.0.1.

Each daemon logs to a file rather than a pipe, so a chatty daemon never blocks on
a full pipe. Each also gets `--port 0`, and the test reads the bound port from the
"daemon started" log line, so parallel runs cannot race for a port. Every process a fixture starts is killed at
teardown if the test left it running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api_tokens import daemon_headers

START_TIMEOUT = 15.0
"""Seconds a daemon may take to log "daemon started" on a loaded 2-core machine."""

FAST_CONFIG = {"collectors": {"system": {"interval": "0.5s"}}}
"""Config that makes the system collector run every 0.5 s."""

_PORT_PATTERN = re.compile(r"daemon started pid=(\d+) .* port=(\d+|off)")


@dataclass
class DaemonProcess:
    """One `atlas daemon` subprocess and its log file."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        """Pid of the daemon process."""
        return self.proc.pid

    def log(self) -> str:
        """Return everything the daemon has written to stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = START_TIMEOUT) -> bool:
        """Poll the log until it contains `text`; False after `timeout` or on exit without it."""
        poll(lambda: text in self.log() or self.proc.poll() is not None, timeout)
        return text in self.log()

    def headers(self) -> dict[str, str]:
        """Return the `Authorization` header with the token the daemon wrote to its data directory."""
        return daemon_headers(self.data_dir)

    def port(self) -> int | None:
        """Return the API port from the "daemon started" line, or None for `--no-api`."""
        match = _PORT_PATTERN.search(self.log())
        assert match is not None, f"no 'daemon started' line in log:\n{self.log()}"
        return None if match.group(2) == "off" else int(match.group(2))

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Send `sig`, wait for the exit and return (exit code, seconds until exit)."""
        began = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - began


def poll(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Evaluate `condition` every `interval` seconds until it is true or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def atlas_env(**extra: str) -> dict[str, str]:
    """Return the environment for an `atlas` subprocess, free of the caller's ATLAS_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    env.update(extra)
    return env


def run_atlas(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run `python -m atlas_tui.cli ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "atlas_tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=atlas_env(),
    )


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, object]], Path]:
    """Return a function that writes a config dict to a JSON file in `tmp_path`."""

    def write(data: dict[str, object]) -> Path:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write


@pytest.fixture
def start_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., DaemonProcess]]:
    """Return a function that starts a daemon; all of them are killed at teardown."""
    started: list[DaemonProcess] = []
    yield _daemon_starter(tmp_path_factory, started)
    _kill_all(started)


@pytest.fixture(scope="module")
def module_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One running daemon with the fast config and an API on a free port, shared by a module."""
    started: list[DaemonProcess] = []
    daemon = _daemon_starter(tmp_path_factory, started)(FAST_CONFIG)
    assert daemon.wait_for_log("daemon started"), daemon.log()
    yield daemon
    _kill_all(started)


def _daemon_starter(
    tmp_path_factory: pytest.TempPathFactory, started: list[DaemonProcess]
) -> Callable[..., DaemonProcess]:
    def start(
        config: dict[str, object] | None = None,
        *extra: str,
        data_dir: Path | None = None,
        free_port: bool = True,
    ) -> DaemonProcess:
        work = tmp_path_factory.mktemp("daemon")
        data_dir = data_dir or work / "data"
        config_path = work / "config.json"
        config_path.write_text(json.dumps(config or FAST_CONFIG), encoding="utf-8")
        log_path = work / f"stderr-{len(started)}.log"
        command = [
            sys.executable, "-m", "atlas_tui.cli", "daemon",
            "--data-dir", str(data_dir), "--config", str(config_path), *extra,
        ]
        if free_port and "--port" not in extra and "--no-api" not in extra:
            command += ["--port", "0"]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=atlas_env())
        daemon = DaemonProcess(proc=proc, data_dir=data_dir, log_path=log_path)
        started.append(daemon)
        return daemon

    return start


def _kill_all(started: list[DaemonProcess]) -> None:
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)
