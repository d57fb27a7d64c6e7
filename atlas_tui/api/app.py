"""The FastAPI application factory for the daemon's HTTP API.

The daemon calls `create_api` once and serves the result with `ApiServer` on
`api.bind` (127.0.0.1 by default). Each area adds one router module under
`atlas_tui.api` and one `include_router` line here. Handlers read shared state
through `ApiContext`, never through module globals, so tests can build several apps
in one process.

Invariants: a request whose `Host` header names anything but this machine's loopback
names or a name in `api.allowed_hosts` gets 400, so a web page that rebinds its own
DNS name to 127.0.0.1 cannot read the API from a browser. Every route but `/healthz`,
`/readyz`, `/openapi.json` and the analytics ingest route needs a bearer token
(`atlas_tui.api.security` installs the checks). FastAPI's `/docs` and `/redoc`
pages are off because they load their scripts from a public CDN. The schema stays
at `/openapi.json`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from atlas_tui.api import alerts, analytics, health, metrics, metrics_range, system, ws
from atlas_tui.api import errors, prometheus
from atlas_tui.api.context import ApiContext, StatusesProvider
from atlas_tui.api.live import LiveHub
from atlas_tui.api.security import install_security
from atlas_tui.config import Config

__all__ = ["ALLOWED_HOSTS", "DEFAULT_STALE_AFTER", "create_api"]

DEFAULT_STALE_AFTER = 30.0
"""Seconds without a heartbeat after which the daemon is reported as stale."""

ALLOWED_HOSTS = ("127.0.0.1", "localhost", "[::1]")
"""Host header values the API always accepts, each with or without a port."""


def create_api(
    data_dir: Path,
    *,
    started_at: float,
    version: str,
    statuses_provider: StatusesProvider,
    stale_after: float = DEFAULT_STALE_AFTER,
    clock: Callable[[], float] = time.time,
    config: Config | None = None,
) -> FastAPI:
    """Build the API app for the store in `data_dir`.

    Args:
        data_dir: Data directory holding `atlas.db`.
        started_at: UTC epoch seconds when the serving process started.
        version: Version string reported by `/api/system/status`.
        statuses_provider: Returns the collectors' latest statuses.
        stale_after: Seconds after which an old heartbeat counts as stale.
        clock: Clock for uptime, heartbeat age and the time of acknowledgements.
        config: The daemon's config; acknowledgements read its rules and channels.
            None uses the defaults, which have no channels.

    Returns:
        The app, with `/api/system/status`, `/api/metrics` and `/api/alerts` routes.
        It serves only requests addressed to a name in `ALLOWED_HOSTS` or the config's
        `api.allowed_hosts`, and only with the token `atlas_tui.api.access` asks for.
    """
    settings = (config if config is not None else Config()).api
    app = FastAPI(title="ATLAS", version=version, docs_url=None, redoc_url=None)
    install_security(app, data_dir.resolve(), settings, [*ALLOWED_HOSTS, *settings.allowed_hosts])
    app.state.context = ApiContext(
        data_dir=data_dir.resolve(),
        started_at=started_at,
        version=version,
        pid=os.getpid(),
        host=socket.gethostname(),
        statuses_provider=statuses_provider,
        stale_after=stale_after,
        clock=clock,
    )
    # Acknowledge notices go to the channels the stored alert records. The config
    # only supplies rule names and annotations for their text.
    app.state.config = config if config is not None else Config()
    # `WS /ws` fans out what the daemon publishes here; see atlas_tui.api.live.
    app.state.live = LiveHub(app.state.context, lambda: app.state.config)
    app.include_router(health.router)
    app.include_router(system.router)
    app.include_router(metrics.router)
    app.include_router(metrics_range.router)
    app.include_router(ws.router)
    app.include_router(prometheus.router)
    app.include_router(alerts.router)
    analytics.install(app)
    errors.install(app)
    return app
