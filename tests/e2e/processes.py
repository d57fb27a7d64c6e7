"""Real processes for end-to-end tests: `atlas daemon`, `atlas` CLI calls and idle child processes.

The daemon runs as `python -m atlas_tui.cli daemon` with its own data directory,
config file and environment (the channel secrets), and logs to a file so a chatty
daemon never blocks on a full pipe. `Sleepers` starts `sleep` processes that the
daemon's system collector counts in `process_count`, which lets a test move a real
metric up and down on demand.

Every wait here is bounded polling; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = ["OPERATOR", "START_TIMEOUT", "AtlasDaemon", "Sleepers", "atlas_env", "poll", "process_count", "run_atlas"]

START_TIMEOUT = 15.0
"""Seconds a daemon may take to log "daemon started" on a loaded 2-core machine."""

OPERATOR = "e2e-oncall"
"""`$USER` of every CLI call, so acknowledgements record a known actor."""

_STARTED = re.compile(r"daemon started pid=(\d+) .* port=(\d+|off)")


def poll(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Evaluate `condition` every `interval` seconds until it is true or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def process_count() -> int:
    """Return the number of processes on the host, as the system collector counts them."""
    return len(psutil.pids())


def atlas_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment for `atlas` without the caller's ATLAS_* and SUDO_USER settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_") and key != "SUDO_USER"}
    env["USER"] = OPERATOR
    env.update(extra or {})
    return env


def run_atlas(*args: str, env: Mapping[str, str] | None = None, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run `python -m atlas_tui.cli ARGS` to completion and return its output."""
    return subprocess.run(
        [sys.executable, "-m", "atlas_tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=atlas_env(env),
    )


@dataclass
class AtlasDaemon:
    """One `atlas daemon` subprocess and its log file."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    started_at: float
    """UTC epoch seconds just before the process was started."""

    @classmethod
    def start(
        cls,
        data_dir: Path,
        config_path: Path,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        api: bool = True,
        port: int = 0,
    ) -> AtlasDaemon:
        """Start a daemon on `data_dir` with `config_path`; `api` serves the API on `port` (0: a free one)."""
        command = [
            sys.executable, "-m", "atlas_tui.cli", "daemon",
            "--data-dir", str(data_dir), "--config", str(config_path),
        ]
        command += ["--port", str(port)] if api else ["--no-api"]
        started_at = time.time()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=atlas_env(env))
        return cls(proc=proc, data_dir=data_dir, log_path=log_path, started_at=started_at)

    @property
    def pid(self) -> int:
        """Pid of the daemon process."""
        return self.proc.pid

    def log(self) -> str:
        """Return everything the daemon has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_started(self, timeout: float = START_TIMEOUT) -> bool:
        """Poll the log for "daemon started"; False after `timeout` or when the process exited."""
        poll(lambda: _STARTED.search(self.log()) is not None or self.proc.poll() is not None, timeout)
        return _STARTED.search(self.log()) is not None

    def port(self) -> int:
        """Return the API port from the "daemon started" line."""
        match = _STARTED.search(self.log())
        assert match is not None and match.group(2) != "off", f"no API port in the daemon log:\n{self.log()}"
        return int(match.group(2))

    def kill9(self) -> None:
        """Send SIGKILL and reap the process; nothing of the daemon runs afterwards."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int:
        """Send SIGTERM, wait for the exit and return the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def ensure_dead(self) -> None:
        """Kill the process if it still runs; for teardown."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class Sleepers:
    """Idle `sleep` child processes that raise the host's process count while they live."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, count: int) -> None:
        """Start `count` processes that sleep for 5 minutes unless killed earlier."""
        for _ in range(count):
            self.procs.append(
                subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            )

    def kill(self) -> None:
        """Kill and reap every process started so far."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=10)
        self.procs.clear()
