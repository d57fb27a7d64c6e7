"""`POST /api/analytics/events`, the mobile SDK's batch endpoint, and `GET /api/analytics`, the summary.

`install` adds the router to the app from `create_api`, with the per-app ingest
state and the error handler. A request goes through: ingest key → daemon-wide rate
→ body read in chunks under the size limits → `decode_batch` and `prepare_batch`
(in the `PrepareWorker` child process when other batches are in flight) →
per-device rate → the app's `BatchWriter`, which stores the batches of concurrent
requests in one transaction, a savepoint each, and replies after COMMIT. Only this
module reads the clock for ingestion.

Errors have the body `{"error": {"code", "message", "details"}}`: 400 invalid JSON
or envelope, 401 unknown ingest key, 413 too large, 415 unsupported encoding, 429
over a rate (with `Retry-After`), 503 store, host secret or prepare worker
unavailable (nothing of the batch stored).

`GET /api/analytics` is read-only: it returns `reports.build_summary` over the
rollups as the daemon's `app_health` collector last refreshed them.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from atlas_tui.analytics.body import BodyReader
from atlas_tui.analytics.config import AnalyticsConfig
from atlas_tui.analytics.errors import (
    AnalyticsError,
    BatchRejectedError,
    HostSecretError,
    PrepareWorkerError,
    RateLimitedError,
    StoreWriteError,
    UnknownIngestKeyError,
)
from atlas_tui.analytics.models import AnalyticsSummary
from atlas_tui.analytics.reports import build_summary
from atlas_tui.analytics.ingest import IngestResponse, PreparedBatch, batch_response_json, decode_batch, prepare_batch
from atlas_tui.analytics.prepare_worker import PrepareWorker
from atlas_tui.analytics.privacy import Pseudonymizer, load_host_secret, mask_ip
from atlas_tui.analytics.protocol import Batch
from atlas_tui.analytics.ratelimit import RateLimiter
from atlas_tui.analytics.writer import BatchWriter
from atlas_tui.api.alerts import ErrorBody, ErrorDetail
from atlas_tui.api.context import ApiContext, get_context
from atlas_tui.api.params import invalid_parameter
from atlas_tui.config import Config
from storage.db import DB_FILENAME, connect
from storage.errors import StorageError

__all__ = [
    "DEFAULT_SUMMARY_WINDOW",
    "LATEST_SUMMARY_TIME",
    "MAX_SUMMARY_WINDOW",
    "IngestState",
    "get_summary",
    "handle_analytics_error",
    "install",
    "router",
]

DEFAULT_SUMMARY_WINDOW = 7 * 86400.0
"""Seconds before `to` where the summary starts when `from` is not given."""

MAX_SUMMARY_WINDOW = 366 * 86400.0
"""Maximum length of a summary window, in seconds. The summary reads one daily row with
one query per day of the window. A window from 1970 to now took 0.3 s and returned
1.1 MB from an empty store on a 2-core machine, and the cost grows with the window.
NOTE: a year is a chosen limit, not a measured one."""

LATEST_SUMMARY_TIME = 253_402_214_400.0
"""Latest `from` or `to` accepted, 9999-12-30T00:00:00Z: Python dates end with year 9999,
and the daily rows need the day after `to` in any time zone."""

_WRITER_AUTOCHECKPOINT_PAGES = 4000

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/analytics", tags=["analytics"])


@dataclass
class IngestState:
    """Per-app ingest state: config, rate limiters and the lazily loaded host secret."""

    config: AnalyticsConfig
    """The `analytics` config section."""
    data_dir: Path
    """Data directory holding the host secret."""
    monotonic: Callable[[], float] = time.monotonic
    """Clock of the rate limiters."""
    daemon_limiter: RateLimiter = field(init=False)
    device_limiter: RateLimiter = field(init=False)
    writer: BatchWriter = field(init=False)
    """Stores the batches; started on the first batch, closed when the app shuts down."""
    worker: PrepareWorker | None = field(default=None, init=False)
    """Prepares batches that arrive while others are in flight. Created with the first such batch."""
    in_flight: int = field(default=0, init=False)
    """Batches between the end of their body and their COMMIT."""
    _pseudonymizer: Pseudonymizer | None = field(default=None, init=False)
    _secret: bytes = field(default=b"", init=False, repr=False)
    _retiring: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        limits = self.config.rate_limits
        self.daemon_limiter = RateLimiter("daemon", limits.daemon_batches_per_second, limits.daemon_batches_per_second)
        per_minute = limits.device_batches_per_minute
        self.device_limiter = RateLimiter("device", per_minute / 60.0, per_minute)
        self.writer = BatchWriter(self._open_store)

    @property
    def store_path(self) -> Path:
        """The store file batches are written to."""
        return self.data_dir / DB_FILENAME

    def _open_store(self) -> sqlite3.Connection:
        # `connect` would create a missing file, so a store that is gone is reported instead.
        if not self.store_path.is_file():
            raise StorageError(f"store not found: {self.store_path}")
        conn = connect(self.store_path)
        # This connection commits most of the WAL frames under ingest. A checkpoint
        # after 4,000 pages (16 MiB) instead of SQLite's 1,000 copies a page that every
        # transaction changes once instead of four times. The writer thread then used
        # about 10 % less CPU per event in bench/analytics_ingest.py.
        conn.execute(f"PRAGMA wal_autocheckpoint = {_WRITER_AUTOCHECKPOINT_PAGES}")
        return conn

    def app_for(self, authorization: str | None) -> str:
        """Return the app id of the request's bearer token.

        Raises:
            UnknownIngestKeyError: no token, or one no app uses.
        """
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnknownIngestKeyError()
        for app_id, app in self.config.apps.items():
            if hmac.compare_digest(app.ingest_key.encode(), token.encode()):
                return app_id
        raise UnknownIngestKeyError()

    def loaded_pseudonymizer(self) -> Pseudonymizer | None:
        """Return the keyed hasher if the host secret was already read, without touching the disk."""
        return self._pseudonymizer

    def pseudonymizer(self) -> Pseudonymizer:
        """Return the keyed hasher, reading or creating the host secret on first use."""
        with self._lock:
            if self._pseudonymizer is None:
                self._secret = load_host_secret(self.data_dir)
                self._pseudonymizer = Pseudonymizer(self._secret)
            return self._pseudonymizer

    async def prepare(self, body: bytes, *, app_id: str, client_ip: str | None, now: float) -> PreparedBatch:
        """Decode and prepare a batch: in the prepare worker when other batches are in flight, else inline.

        Raises:
            BatchRejectedError: the body is not JSON or its envelope is invalid.
            HostSecretError: the host secret cannot be read or created.
            PrepareWorkerError: the worker exited before it returned this batch.
        """
        pseudonymizer = self.loaded_pseudonymizer() or await run_in_threadpool(self.pseudonymizer)
        worker = self._ready_worker()
        if worker is not None:
            return await worker.prepare(body, app_id=app_id, client_ip=client_ip, now=now)
        # Inline, preparing is pure CPU under the GIL: a worker thread would only add hand-offs.
        return prepare_batch(
            decode_batch(body), app_id=app_id, config=self.config, pseudonymizer=pseudonymizer,
            client_ip=client_ip, now=now,
        )  # fmt: skip

    async def close(self) -> None:
        """Stop the prepare worker and the writer; later batches fail."""
        if self.worker is not None:
            await self.worker.close()
        if self._retiring:
            await asyncio.gather(*self._retiring)
        self.writer.close()

    def _retire_worker(self, worker: PrepareWorker) -> None:
        """Stop `worker` in the background after the batches it has; the next concurrent batch starts a new one.

        A config reload replaces `config`, and the child prepares with the config it was started with.
        """
        self.worker = None
        task = asyncio.get_running_loop().create_task(worker.close())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _ready_worker(self) -> PrepareWorker | None:
        """Return the worker if other batches are in flight and it is ready, and start it in the background if needed.

        A lone batch is prepared inline: starting a process for it would cost more
        than the batch, and the loop has time for it.
        """
        if self.worker is not None and (self.worker.config is not self.config or not self.config.prepare_in_worker):
            self._retire_worker(self.worker)
        if not self.config.prepare_in_worker or self.in_flight < 2:
            return None
        if self.worker is None:
            self.worker = PrepareWorker(self.config, self._secret)
        if self.worker.ready:
            return self.worker
        self.worker.start_soon()
        return None


def install(app: FastAPI) -> None:
    """Add the analytics routes, their state and error handler to `app` (built by `create_api`)."""
    context: ApiContext = app.state.context
    config: Config = app.state.config
    state = IngestState(config.analytics, context.data_dir)
    app.state.analytics = state
    app.router.on_shutdown.append(state.close)
    app.include_router(router)
    app.add_exception_handler(AnalyticsError, handle_analytics_error)
    _document_batch(app)


_BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A `Batch`, as JSON or gzip JSON (`Content-Encoding: gzip`), at most 1 MiB as sent.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}},
    }
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not JSON or the batch envelope is invalid."},
    401: {"model": ErrorBody, "description": "Missing or unknown ingest key."},
    413: {"model": ErrorBody, "description": "Body over 1 MiB, over 8 MiB decoded, or more than 500 events."},
    415: {"model": ErrorBody, "description": "Content-Encoding other than gzip."},
    429: {"model": ErrorBody, "description": "The device or the daemon is over its rate; see Retry-After."},
}


@router.post("/events", response_model=IngestResponse, responses=_ERRORS, openapi_extra=_BATCH_BODY)
async def post_events(request: Request) -> Response:
    """Store a batch of SDK events and return one status per event.

    Events already stored (same app and `event_id`) are reported `duplicate` and not
    stored again, so the SDK may resend a batch whose response it never received.
    """
    # Not `Depends(get_context)`, because FastAPI runs a plain-function dependency in
    # a worker thread, which costs a thread hand-off per batch.
    context: ApiContext = request.app.state.context
    state: IngestState = request.app.state.analytics
    app_id = state.app_for(request.headers.get("authorization"))
    state.daemon_limiter.acquire({"daemon"}, state.monotonic())

    reader = BodyReader(request.headers.get("content-length"), request.headers.get("content-encoding"))
    async for chunk in request.stream():
        reader.feed(chunk)
    body = reader.finish()

    now = context.clock()
    client_ip = request.client.host if request.client else None
    state.in_flight += 1
    try:
        prepared = await state.prepare(body, app_id=app_id, client_ip=client_ip, now=now)
        state.device_limiter.acquire(prepared.device_hashes, state.monotonic())
        outcomes = await state.writer.store([row for _, row in prepared.rows], prepared.counts, now)
    except (sqlite3.Error, StorageError) as err:
        raise StoreWriteError(state.store_path, str(err)) from err
    finally:
        state.in_flight -= 1
    logger.debug("analytics batch stored app=%s rows=%d events=%d", app_id, len(prepared.rows), len(prepared.statuses))
    # Serialized here, not by FastAPI's response_model, which would validate every status again.
    return Response(batch_response_json(prepared, outcomes, now), media_type="application/json")


@router.get("", response_model=AnalyticsSummary)
def get_summary(
    request: Request,
    start: float | None = Query(default=None, alias="from", ge=0, le=LATEST_SUMMARY_TIME, description="Window start, UTC epoch seconds (default: 7 days before `to`)."),
    end: float | None = Query(default=None, alias="to", ge=0, le=LATEST_SUMMARY_TIME, description="Window end, UTC epoch seconds (default: now)."),
    app: str | None = Query(default=None, description="Only this app id."),
    version: str | None = Query(default=None, description="Only this app version, such as 2.3.0."),
    platform: str | None = Query(default=None, description="Only `android` or `ios`."),
    context: ApiContext = Depends(get_context),
) -> AnalyticsSummary:
    """Return usage, sessions, crash-free rates, screens, performance and ingest numbers for the window."""
    now = context.clock()
    window_end = now if end is None else end
    window_start = window_end - DEFAULT_SUMMARY_WINDOW if start is None else start
    if not window_start < window_end:
        raise invalid_parameter("from", f"{window_start}", f"the window must start before `to` ({window_end}); give an earlier `from`")
    if window_end - window_start > MAX_SUMMARY_WINDOW:
        days = MAX_SUMMARY_WINDOW / 86400
        raise invalid_parameter("from", f"{window_start}", f"the window is longer than {days:g} days; give a later `from` or an earlier `to`")
    config: Config = request.app.state.config
    with context.read_connection() as conn:
        return build_summary(
            conn, start=window_start, end=window_end, app=app, version=version, platform=platform,
            timezone=config.analytics.timezone, now=now,
        )  # fmt: skip


async def handle_analytics_error(request: Request, exc: Exception) -> JSONResponse:
    """Render an `AnalyticsError` as its HTTP status and `ErrorBody` (an exception handler)."""
    assert isinstance(exc, AnalyticsError)
    status, code, details, headers = _describe(exc)
    # A flooding device would fill the log with 429s, so those stay at DEBUG.
    if status >= 500:
        level = logging.ERROR
    elif status == 429:
        level = logging.DEBUG
    else:
        level = logging.INFO
    logger.log(level, "analytics batch rejected status=%d code=%s client=%s", status, code, _masked_client(request))
    body = ErrorBody(error=ErrorDetail(code=code, message=str(exc), details=details))
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


def _masked_client(request: Request) -> str | None:
    return mask_ip(request.client.host) if request.client else None


def _describe(exc: AnalyticsError) -> tuple[int, str, dict[str, str], dict[str, str]]:
    if isinstance(exc, BatchRejectedError):
        return exc.status_code, exc.code, exc.details, {}
    if isinstance(exc, UnknownIngestKeyError):
        return 401, "unknown_ingest_key", {}, {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimitedError):
        retry = str(exc.retry_after)
        return 429, "rate_limited", {"scope": exc.scope, "retry_after": retry}, {"Retry-After": retry}
    if isinstance(exc, HostSecretError):
        return 503, "host_secret_unavailable", {"path": str(exc.path)}, {}
    if isinstance(exc, StoreWriteError):
        return 503, "store_unavailable", {"path": str(exc.path)}, {"Retry-After": "5"}
    if isinstance(exc, PrepareWorkerError):
        return 503, "prepare_worker_unavailable", {}, {"Retry-After": "1"}
    return 500, "analytics_error", {}, {}  # pragma: no cover - every subclass is listed above


def _document_batch(app: FastAPI) -> None:
    """Put the `Batch` model and its event models into the OpenAPI components.

    The route reads the body as a stream to enforce size limits, so FastAPI cannot
    derive the request schema from a parameter.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        batch = Batch.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(batch.pop("$defs", {}))
        components["Batch"] = batch
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
