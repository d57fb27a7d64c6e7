"""The FastAPI application factory for the daemon's HTTP API.

The daemon calls `create_api` once and serves the result with `ApiServer` on
127.0.0.1. Each area adds one router module under `atlas_tui.api` and one
`include_router` line here. Handlers read shared state through `ApiContext`, never
through module globals, so tests can build several apps in one process.

Invariants: a request whose `Host` header names anything but this machine's loopback
names gets 400, so a web page that rebinds its own DNS name to 127.0.0.1 cannot read
the API from a browser. FastAPI's `/docs` and `/redoc` pages are off because they
load their scripts from a public CDN. The schema stays at `/openapi.json`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.trustedhost import TrustedHostMiddleware

from atlas_tui.api import alerts, analytics, metrics, system
from atlas_tui.api.context import ApiContext, StatusesProvider
from atlas_tui.config import Config

__all__ = ["ALLOWED_HOSTS", "DEFAULT_STALE_AFTER", "create_api"]

DEFAULT_STALE_AFTER = 30.0
"""Seconds without a heartbeat after which the daemon is reported as stale."""

ALLOWED_HOSTS = ("127.0.0.1", "localhost", "[::1]")
"""Host header values the API accepts, each with or without a port."""


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
        It serves only requests addressed to a name in `ALLOWED_HOSTS`.
    """
    app = FastAPI(title="ATLAS", version=version, docs_url=None, redoc_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(ALLOWED_HOSTS), www_redirect=False)
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
    app.include_router(system.router)
    app.include_router(metrics.router)
    app.include_router(alerts.router)
    app.add_exception_handler(alerts.AlertApiError, alerts.handle_alert_api_error)
    app.add_exception_handler(RequestValidationError, alerts.handle_validation_error)
    analytics.install(app)
    return app
