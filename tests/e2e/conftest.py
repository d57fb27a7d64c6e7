"""Fixtures for end-to-end alerting tests: daemons, receivers, secrets and a movable process count.

Everything runs on this host: `atlas daemon` subprocesses on a temporary data
directory, an aiosmtpd server with STARTTLS and AUTH, and `HookServer`s standing
in for Slack and a webhook, all on 127.0.0.1. Channel secrets reach the daemon
through environment variables named in the config, as in production. Every
process and server a fixture starts is stopped at teardown, even when the test
failed half-way.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.alerts.receivers import SmtpRecorder, make_certificate, running_smtp
from tests.e2e.channels import SMTP_USER, Smtp
from tests.e2e.hooks import HookServer
from tests.e2e.processes import AtlasDaemon, Sleepers


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Smtp]:
    """An SMTP server on 127.0.0.1 that requires STARTTLS before AUTH and records each message."""
    certificate = make_certificate(tmp_path, "smtp-e2e", "IP:127.0.0.1")
    password = base64.b32encode(os.urandom(10)).decode("ascii")
    recorder = SmtpRecorder()
    with running_smtp(recorder, "starttls", certificate, users={SMTP_USER: password}) as port:
        yield Smtp(port=port, recorder=recorder, ca_file=certificate.cert, password=password)


@pytest.fixture
def hook_servers() -> Iterator[Callable[..., HookServer]]:
    """Return a function that starts a `HookServer`; all of them stop at teardown."""
    started: list[HookServer] = []

    def start(port: int = 0, status: int = 200) -> HookServer:
        server = HookServer(port=port, status=status).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def webhook_secret() -> str:
    """A fresh Standard Webhooks secret, `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode("ascii")


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., AtlasDaemon]]:
    """Return a function that writes the config and starts a daemon; all are killed at teardown.

    Every daemon of one test shares the data directory `tmp_path / "data"`, so a
    second call is a restart of the first.
    """
    started: list[AtlasDaemon] = []

    def start(
        config: dict[str, object], *, env: Mapping[str, str] | None = None, api: bool = False, port: int = 0
    ) -> AtlasDaemon:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        log_path = tmp_path / f"daemon-{len(started)}.log"
        daemon = AtlasDaemon.start(tmp_path / "data", config_path, log_path, env=env, api=api, port=port)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.ensure_dead()


@pytest.fixture
def sleepers() -> Iterator[Sleepers]:
    """Idle child processes that a test adds to the host's process count; killed at teardown."""
    spawned = Sleepers()
    yield spawned
    spawned.kill()

