"""The headless daemon: collectors, alerting, heartbeat, store maintenance and the HTTP API.

`atlas daemon` calls `run_daemon`, which runs one asyncio supervisor:

    lock file ─▶ API socket ─▶ store ─┬─ CollectionPipeline ─▶ samples
                                      ├─ AlertService       ─▶ alert states, history, outbox rows
                                      ├─ OutboxSender       ─▶ email, Slack, webhooks, Alertmanager
                                      ├─ heartbeat task     ─▶ heartbeat row
                                      ├─ maintenance task   ─▶ rollups, retention, checkpoint
                                      ├─ BackupService      ─▶ scheduled backups, run records, backup metrics
                                      └─ API server task    ◀─ scripts with a token, on 127.0.0.1 by default

Invariants: the daemon is the only long-running writer of the store and holds
`daemon.lock` the whole time it runs. It starts only on a store that passes
`PRAGMA quick_check`. Each task that writes has its own SQLite connection and awaits
its `asyncio.to_thread` call before starting the next, so no connection is used by
two threads at once. Connections are closed only after their task has returned.
SIGTERM and SIGINT stop the collectors after the current write commits, the alert
service after its current cycle commits and the outbox sender after a short grace
for in-flight sends, then the API. SIGHUP reads the config file again and applies
what can change live (`atlas_tui.reload`). A clean stop deletes the heartbeat row, so
readers see the daemon as absent at once. The process exits within `EXIT_DEADLINE`
of the stop request even when a worker thread is still blocked. The `httpx`
loggers stay at WARNING, because their INFO lines carry request URLs and a Slack
webhook URL is a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from atlas_tui import __version__
from atlas_tui.alerts.outbox import OutboxSender
from atlas_tui.alerts.service import AlertService
from atlas_tui.api_config import DEFAULT_BIND
from atlas_tui.api_tokens import ensure_local_token
from atlas_tui.collection import CollectionPipeline
from atlas_tui.config import Config
from atlas_tui.errors import AtlasError
from atlas_tui.lockfile import DaemonLock
from atlas_tui.logs import configure_logging
from atlas_tui.reload import ConfigReloader, ReloadableSender
from collectors.scheduler import FAILURE_LOG_INTERVAL
from storage.alerts import delete_old_history
from storage.backup_runs import delete_old_runs
from storage.db import DB_FILENAME, connect, open_store, prepare_data_dir
from storage.metrics import apply_retention, update_rollups
from storage.outbox import apply_outbox_retention
from storage.status import Heartbeat, checkpoint, clear_heartbeat, store_size, write_heartbeat

if TYPE_CHECKING:
    from fastapi import FastAPI

    from atlas_tui.api import ApiServer
    from atlas_tui.backup.service import BackupService

__all__ = [
    "CLEANUP_GRACE",
    "EXIT_DEADLINE",
    "EXIT_FAILURE",
    "EXIT_OK",
    "SHUTDOWN_TIMEOUT",
    "WAL_WARNING_BYTES",
    "Supervisor",
    "WalWatch",
    "heartbeat_stale_after",
    "run_daemon",
]

EXIT_OK = 0
"""Exit code after a stop by signal."""
EXIT_FAILURE = 1
"""Exit code when the daemon cannot start, a task fails or the stop times out."""

SHUTDOWN_TIMEOUT = 4.5
"""Seconds from a stop signal until unfinished tasks are abandoned. Releasing the
lock and leaving the interpreter take the rest of the 5 s stop budget."""

EXIT_DEADLINE = 4.8
"""Seconds from a stop request until the process exits, even if a worker thread is
still blocked (a psutil call on a hung mount, a SQLite write waiting for a lock).
Without it `asyncio.run` and the interpreter would wait for that thread."""

CLEANUP_GRACE = 0.5
"""Seconds the interpreter may take to leave after the supervisor has returned."""

WAL_WARNING_BYTES = 64 * 1024 * 1024
"""WAL size in bytes after a checkpoint above which the daemon logs a warning. It
equals the store's `journal_size_limit`, so a larger WAL means a reader pins it."""

logger = logging.getLogger(__name__)

_URL_LOGGERS = ("httpx", "httpcore")
"""Loggers that would print request URLs (and so webhook secrets) below WARNING."""


def run_daemon(
    config: Config,
    data_dir: Path,
    *,
    port: int | None,
    api: bool,
    log_file: Path | None,
    log_level: str = "INFO",
    bind: str | None = None,
    config_path: Path | None = None,
) -> int:
    """Run the daemon in the foreground until SIGTERM or SIGINT.

    Args:
        config: The effective configuration.
        data_dir: Data directory holding the store and the lock file.
        port: API port. None uses `config.port` and 0 picks a free port.
        api: False serves no HTTP API and opens no port.
        log_file: Also write log records to this file, rotated by size.
        log_level: Root log level (`DEBUG`, `INFO`, `WARNING`, `ERROR`).
        bind: API listen address. None uses `config.api.bind`.
        config_path: The file `config` was read from, read again on SIGHUP. None
            (the built-in defaults) makes SIGHUP log that there is nothing to reload.

    Returns:
        `EXIT_OK` after a stop by signal. `EXIT_FAILURE` when another daemon has
        locked the data directory, the port is in use, the store cannot be opened,
        a task fails or the stop times out.

    Raises:
        ConfigError: the API would listen off loopback without tokens or allowed
            hosts, or its TLS files do not load (see `atlas_tui.api.exposure`).
    """
    configure_logging(log_level, log_file)
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    data_dir = data_dir.expanduser().resolve()
    address = config.api.bind if bind is None else bind
    if api:
        from atlas_tui.api.exposure import check_exposure

        check_exposure(config.api, address, data_dir)
    guard = _ExitGuard()
    supervisor = Supervisor(
        config,
        data_dir,
        port=config.port if port is None else port,
        api=api,
        on_stop=lambda: guard.arm(EXIT_DEADLINE),
        bind=address,
        config_path=config_path,
    )
    return asyncio.run(_supervise(supervisor, guard))


async def _supervise(supervisor: Supervisor, guard: _ExitGuard) -> int:
    code = await supervisor.run()
    # What follows is asyncio.run cancelling leftover tasks and joining the default
    # executor's threads, which must not outlast the grace.
    guard.finished(code)
    return code


def heartbeat_stale_after(interval: float) -> float:
    """Return the heartbeat age in seconds after which the daemon counts as stale.

    That is three missed heartbeats, but at least 15 s, so a slow disk does not
    flip the state of a daemon that beats every second.
    """
    return max(3.0 * interval, 15.0)


class Supervisor:
    """Start, watch and stop the daemon's tasks inside one asyncio loop."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        *,
        port: int,
        api: bool,
        on_stop: Callable[[], None] | None = None,
        bind: str = DEFAULT_BIND,
        config_path: Path | None = None,
    ) -> None:
        """Prepare the supervisor without opening anything until `run()`.

        Args:
            config: The effective configuration.
            data_dir: Absolute data directory.
            port: API port, 0 for a free one.
            api: Whether to serve the HTTP API.
            on_stop: Called once, on the loop thread, when a stop is first requested.
            bind: API listen address.
            config_path: The config file, read again on SIGHUP; None for the defaults.
        """
        self.config = config
        self.data_dir = data_dir
        self.port = port
        self.bind = bind
        self.config_path = config_path
        self._app: FastAPI | None = None
        self._reloader: ConfigReloader | None = None
        self.api_enabled = api
        self.interval = config.collectors.system.interval
        self.started_at = 0.0
        self._stop = asyncio.Event()
        self._on_stop = on_stop
        self._heartbeat_errors = _RepeatedFailure("heartbeat")
        self._maintenance_errors = _RepeatedFailure("maintenance")
        self._wal_watch = WalWatch(data_dir)
        self._backup: BackupService | None = None

    async def run(self) -> int:
        """Run until a stop signal and return the exit code."""
        lock = DaemonLock(self.data_dir)
        try:
            # Checked before the lock file is created in it, so a data dir that is
            # a file or read-only gets a message naming it instead of an errno.
            prepare_data_dir(self.data_dir)
            lock.acquire()
        except (AtlasError, OSError) as err:
            logger.error("daemon not started: %s", err)
            return EXIT_FAILURE
        self._install_signal_handlers()
        try:
            return await self._run_locked()
        finally:
            self._remove_signal_handlers()
            lock.release()

    def request_stop(self, reason: str) -> None:
        """Begin a graceful stop. Later calls only log that a stop is in progress."""
        if self._stop.is_set():
            logger.info("stop already in progress reason=%s", reason)
            return
        logger.info("stopping reason=%s", reason)
        self._stop.set()
        if self._on_stop is not None:
            self._on_stop()

    async def _run_locked(self) -> int:
        self.started_at = time.time()
        pipeline = CollectionPipeline(self.config, self.data_dir)
        alerting = _Alerting.build(self.config, self.data_dir, pipeline)
        server: ApiServer | None = None
        try:
            server = self._bind_api(pipeline) if self.api_enabled else None
            stores = await _Connections.open(self.data_dir)
        except (AtlasError, OSError, sqlite3.Error) as err:
            if isinstance(err, sqlite3.Error):
                store = self.data_dir / DB_FILENAME
                logger.error("daemon not started: cannot use the store %s: %s", store, err)
            else:
                logger.error("daemon not started: %s data_dir=%s", err, self.data_dir)
            if server is not None:
                server.close()
            return EXIT_FAILURE
        if server is not None and not await self._write_local_token(stores.maintenance):
            server.close()
            stores.close()
            return EXIT_FAILURE

        await self._beat(stores.heartbeat)
        self._reloader = self._connect_live_parts(pipeline, alerting)
        tasks = self._start_tasks(pipeline, alerting, server, stores)
        logger.info(
            "daemon started pid=%d data_dir=%s port=%s version=%s",
            os.getpid(),
            self.data_dir,
            server.port if server is not None else "off",
            __version__,
        )
        ended_early = await self._wait_for_stop(tasks)
        finished = await self._shutdown(tasks, pipeline, alerting, server, stores)
        failed = self._log_task_errors(tasks) or ended_early
        if tasks["heartbeat"].done():
            await self._clear_beat(stores.heartbeat)
        if finished:
            stores.close()
        logger.info("daemon stopped pid=%d", os.getpid())
        return EXIT_OK if finished and not failed else EXIT_FAILURE

    def _bind_api(self, pipeline: CollectionPipeline) -> ApiServer:
        # Imported here because FastAPI takes a noticeable share of start-up time
        # and `--no-api` should not pay for it.
        from atlas_tui.api import ApiServer, create_api

        app = create_api(
            self.data_dir,
            started_at=self.started_at,
            version=__version__,
            statuses_provider=pipeline.statuses,
            stale_after=heartbeat_stale_after(self.interval),
            config=self.config,
        )
        self._app = app
        api = self.config.api
        server = ApiServer(app, self.port, host=self.bind, tls_cert=api.tls_cert, tls_key=api.tls_key)
        server.bind()
        return server

    async def _write_local_token(self, conn: sqlite3.Connection) -> bool:
        """Create or reuse the token file the console and CLI on this host use, and return False if that failed."""
        try:
            await asyncio.to_thread(ensure_local_token, conn, self.data_dir, time.time())
        except (AtlasError, OSError, sqlite3.Error) as err:
            logger.error("daemon not started: cannot write the local api token data_dir=%s: %s", self.data_dir, err)
            return False
        return True

    def _start_tasks(
        self,
        pipeline: CollectionPipeline,
        alerting: _Alerting,
        server: ApiServer | None,
        stores: _Connections,
    ) -> dict[str, asyncio.Task[None]]:
        coroutines = {
            "pipeline": pipeline.run(),
            "alerts": alerting.service.run(),
            "outbox": alerting.sender.run(),
            "heartbeat": self._heartbeat_loop(stores.heartbeat),
            "maintenance": self._maintenance_loop(stores.maintenance),
        }
        if server is not None:
            coroutines["api"] = server.serve()
        self._backup = self._backup_service()
        if self._backup is not None:
            coroutines["backup"] = self._backup.run()
            if self._app is not None:
                self._backup.add_listener(self._app.state.live.publish_backup)
        return {name: asyncio.create_task(coro, name=name) for name, coro in coroutines.items()}

    def _backup_service(self) -> BackupService | None:
        """Build the backup schedule when backups are set up (see `schedule_enabled`), else None."""
        from atlas_tui.backup.service import BackupService, schedule_enabled

        if not schedule_enabled(self.config, self.data_dir):
            logger.debug("backup schedule off: no backup section in the config and no repository data_dir=%s",
                         self.data_dir)
            return None
        return BackupService.for_daemon(self.config.backup, self.data_dir)

    async def _stop_backup(self) -> None:
        if self._backup is not None:
            await self._backup.stop()

    async def _wait_for_stop(self, tasks: dict[str, asyncio.Task[None]]) -> bool:
        """Wait for a stop request or a task ending, and return True if a task ended first."""
        stop_waiter = asyncio.create_task(self._stop.wait())
        await asyncio.wait([stop_waiter, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        stop_waiter.cancel()
        # The heartbeat and maintenance loops return as soon as the stop event is
        # set, possibly before this coroutine resumes, so only a task that ended
        # while no stop was requested counts as an early end.
        if self._stop.is_set():
            return False
        ended = ",".join(name for name, task in tasks.items() if task.done())
        logger.error("task ended before a stop was requested tasks=%s", ended)
        self.request_stop("task ended")
        return True

    def _log_task_errors(self, tasks: dict[str, asyncio.Task[None]]) -> bool:
        """Log every task that raised and return True if one did."""
        failed = False
        for name, task in tasks.items():
            if not task.done() or task.cancelled():
                continue
            error = task.exception()
            if error is not None:
                logger.error("task failed task=%s: %s", name, error, exc_info=error)
                failed = True
        return failed

    async def _shutdown(
        self,
        tasks: dict[str, asyncio.Task[None]],
        pipeline: CollectionPipeline,
        alerting: _Alerting,
        server: ApiServer | None,
        stores: _Connections,
    ) -> bool:
        """Stop every task within `SHUTDOWN_TIMEOUT` and return False if one did not end."""
        began = time.monotonic()
        # Rollups and retention are idempotent, so an interrupted run is redone
        # next time. Only the collectors' write must commit before the exit.
        stores.maintenance.interrupt()
        if server is not None:
            server.stop()
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                await asyncio.gather(
                    self._stop_pipeline(pipeline, tasks["pipeline"]),
                    alerting.service.stop(),
                    alerting.sender.stop(),
                    self._stop_backup(),
                )
                await asyncio.wait(tasks.values())
        except TimeoutError:
            pending = ",".join(name for name, task in tasks.items() if not task.done())
            logger.warning("stop timed out after %.1fs tasks=%s", SHUTDOWN_TIMEOUT, pending)
            return False
        logger.debug("tasks stopped duration_ms=%.0f", (time.monotonic() - began) * 1000)
        return True

    async def _stop_pipeline(self, pipeline: CollectionPipeline, task: asyncio.Task[None]) -> None:
        if task.done():
            return
        await pipeline.stop()

    async def _heartbeat_loop(self, conn: sqlite3.Connection) -> None:
        while not self._stop.is_set():
            await self._sleep(self.interval)
            if not self._stop.is_set():
                await self._beat(conn)

    async def _beat(self, conn: sqlite3.Connection) -> None:
        beat = Heartbeat(
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=self.started_at,
            updated_at=time.time(),
            version=__version__,
        )
        try:
            await asyncio.to_thread(write_heartbeat, conn, beat)
        except Exception as err:  # noqa: BLE001 - worker boundary: log, retry next beat
            self._heartbeat_errors.failed(err, data_dir=self.data_dir, now=time.monotonic())
            return
        self._heartbeat_errors.succeeded()

    async def _clear_beat(self, conn: sqlite3.Connection) -> None:
        try:
            await asyncio.to_thread(clear_heartbeat, conn, os.getpid())
        except sqlite3.Error as err:
            logger.warning(
                "heartbeat not cleared data_dir=%s: %s; readers show the daemon as stale until it ages out",
                self.data_dir,
                err,
            )

    async def _maintenance_loop(self, conn: sqlite3.Connection) -> None:
        while not self._stop.is_set():
            await self._maintain(conn)
            await self._sleep(self.config.storage.maintenance_interval)

    async def _maintain(self, conn: sqlite3.Connection) -> None:
        try:
            report = await asyncio.to_thread(
                _maintain_store,
                conn,
                time.time(),
                self.config.storage.raw_retention,
                self.config.max_history_hours * 3600.0,
            )
            size = await asyncio.to_thread(store_size, self.data_dir)
        except Exception as err:  # noqa: BLE001 - worker boundary: log, retry next interval
            if self._stop.is_set() and isinstance(err, sqlite3.OperationalError):
                logger.info("maintenance interrupted by stop data_dir=%s", self.data_dir)
                return
            self._maintenance_errors.failed(err, data_dir=self.data_dir, now=time.monotonic())
            return
        self._maintenance_errors.succeeded()

        logger.debug(
            "maintenance done rollups=%d deleted=%d checkpoint_busy=%d wal_bytes=%d",
            report.rollups,
            report.deleted,
            report.checkpoint_busy,
            size.wal_bytes,
        )
        self._wal_watch.observe(size.wal_bytes, report.checkpoint_busy)

    async def _sleep(self, seconds: float) -> None:
        """Sleep `seconds`, returning early when a stop is requested."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    def _reload_requested(self) -> None:
        if self._reloader is None or self._stop.is_set():
            logger.warning("config reload ignored signal=SIGHUP: the daemon is starting or stopping")
            return
        logger.info("config reload requested signal=SIGHUP path=%s", self.config_path)
        self._reloader.request()

    def _connect_live_parts(self, pipeline: CollectionPipeline, alerting: _Alerting) -> ConfigReloader:
        """Feed the API's live hub from the pipeline and the alert service, and build the reloader."""
        app = self._app
        if app is not None:
            live = app.state.live
            pipeline.add_write_listener(live.publish_samples)
            alerting.service.add_cycle_listener(lambda _report: live.alerts_changed())

        def applied(config: Config) -> None:
            self.config = config

        return ConfigReloader(
            self.config_path, self.config, pipeline=pipeline, service=alerting.service,
            sender=alerting.sender, app=app, on_applied=applied, backup=lambda: self._backup,
        )


class WalWatch:
    """Log when the WAL stays above `WAL_WARNING_BYTES` after a checkpoint, and when it recovers.

    Only the crossings are logged, so a WAL pinned for hours gives one warning, not
    one per maintenance run.
    """

    def __init__(self, data_dir: Path, limit_bytes: int = WAL_WARNING_BYTES) -> None:
        """Watch the WAL of the store in `data_dir` against `limit_bytes`."""
        self.data_dir = data_dir
        self.limit_bytes = limit_bytes
        self.over_limit = False
        """True while the latest observed size was above the limit."""

    def observe(self, wal_bytes: int, checkpoint_busy: int) -> None:
        """Record the WAL size measured after a checkpoint and log a crossing of the limit."""
        over = wal_bytes > self.limit_bytes
        if over and not self.over_limit:
            logger.warning(
                "wal file above limit after checkpoint wal_bytes=%d limit_bytes=%d "
                "checkpoint_busy=%d data_dir=%s; a long-lived reader is pinning it, "
                "so close idle consoles and queries on this store",
                wal_bytes,
                self.limit_bytes,
                checkpoint_busy,
                self.data_dir,
            )
        elif self.over_limit and not over:
            logger.info("wal file back under limit wal_bytes=%d data_dir=%s", wal_bytes, self.data_dir)
        self.over_limit = over


@dataclass(frozen=True)
class _MaintenanceReport:
    rollups: int
    deleted: int
    checkpoint_busy: int


def _maintain_store(
    conn: sqlite3.Connection, now: float, raw_keep: float, rollup_keep: float
) -> _MaintenanceReport:
    """Fill rollups, delete expired rows and checkpoint the WAL, in one worker thread.

    Besides samples and rollups, this expires alert history older than 90 days and
    moves undeliverable notices to the dead-letter list (deleting old finished ones),
    and deletes backup run records older than 90 days.
    """
    rollups = update_rollups(conn, now)
    deleted = apply_retention(conn, now, raw_keep=raw_keep, rollup_keep=rollup_keep)
    deleted += delete_old_history(conn, now)
    deleted += apply_outbox_retention(conn, now)
    deleted += delete_old_runs(conn, now)
    busy, _log_frames, _checkpointed = checkpoint(conn)
    return _MaintenanceReport(rollups=rollups, deleted=deleted, checkpoint_busy=busy)


@dataclass(frozen=True)
class _Alerting:
    """The rule evaluation loop and the notification sender, which it wakes."""

    service: AlertService
    sender: ReloadableSender

    @classmethod
    def build(cls, config: Config, data_dir: Path, pipeline: CollectionPipeline) -> _Alerting:
        """Create both; nothing is opened until their `run()`."""
        sender = ReloadableSender(lambda current: OutboxSender(current, data_dir), config)
        service = AlertService(
            config, data_dir, statuses=pipeline.statuses, on_enqueued=sender.wake, wait_for_collectors=True
        )
        return cls(service=service, sender=sender)


@dataclass
class _Connections:
    """One store connection per writing task."""

    heartbeat: sqlite3.Connection
    maintenance: sqlite3.Connection

    @classmethod
    async def open(cls, data_dir: Path) -> _Connections:
        """Open the store for the heartbeat and maintenance tasks, checking and migrating it first.

        Raises:
            storage.errors.StoreCorruptError: `PRAGMA quick_check` found damage.
        """
        heartbeat = await asyncio.to_thread(open_store, data_dir, verify=True)
        try:
            maintenance = await asyncio.to_thread(connect, data_dir / DB_FILENAME)
        except BaseException:
            heartbeat.close()
            raise
        return cls(heartbeat=heartbeat, maintenance=maintenance)

    def close(self) -> None:
        """Close both connections, which is safe only after their tasks have returned."""
        self.heartbeat.close()
        self.maintenance.close()


class _RepeatedFailure:
    """Log failures of a periodic step at ERROR: the first, each change of error, then one per interval.

    The failures in between go to DEBUG, and the next ERROR line counts them.
    """

    def __init__(self, step: str, interval: float = FAILURE_LOG_INTERVAL) -> None:
        self.step = step
        self.interval = interval
        self.count = 0
        self.error = ""
        self.logged_at = 0.0
        self.logged_count = 0

    def failed(self, err: Exception, *, data_dir: Path, now: float) -> None:
        """Count a failure at monotonic `now` and log it if it is due."""
        self.count += 1
        error = f"{type(err).__name__}: {err}"
        changed, self.error = error != self.error, error
        if self.count == 1:
            logger.error("%s failed data_dir=%s: %s", self.step, data_dir, err, exc_info=err)
        elif changed or now - self.logged_at >= self.interval:
            logger.error(
                "%s still failing failures=%d not_logged=%d data_dir=%s: %s",
                self.step,
                self.count,
                self.count - self.logged_count - 1,
                data_dir,
                error,
            )
        else:
            logger.debug("%s failed again failures=%d: %s", self.step, self.count, err)
            return
        self.logged_at, self.logged_count = now, self.count

    def succeeded(self) -> None:
        """Log a recovery after failures and reset the count."""
        if self.count:
            logger.info("%s recovered after failures=%d", self.step, self.count)
        self.count, self.error, self.logged_count = 0, "", 0


class _ExitGuard:
    """End the process with `os._exit` when leaving it normally would outlast its deadline.

    `asyncio.run` joins the default executor's worker threads, and the interpreter
    joins every non-daemon thread, so a thread blocked in psutil or SQLite would hold
    the exit for as long as it blocks. The timer thread is a daemon thread, so a
    process that exits in time ends it unnoticed. An interrupted SQLite transaction
    rolls back on the next open, as after a crash.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._due = float("inf")
        self._code = EXIT_FAILURE

    def arm(self, seconds: float) -> None:
        """Exit `seconds` from now unless the process ends first; an earlier deadline stays."""
        due = time.monotonic() + seconds
        with self._lock:
            if due >= self._due:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._due = due
            self._timer = threading.Timer(seconds, self._force_exit)
            self._timer.daemon = True
            self._timer.name = "atlas-exit-guard"
            self._timer.start()

    def finished(self, code: int) -> None:
        """Record the supervisor's exit code and allow `CLEANUP_GRACE` for the rest."""
        self._code = code
        self.arm(CLEANUP_GRACE)

    def _force_exit(self) -> None:
        running = [
            thread.name
            for thread in threading.enumerate()
            if thread is not threading.current_thread() and thread is not threading.main_thread()
        ]
        logger.warning(
            "exit forced after the stop deadline exit_code=%d threads_running=%s",
            self._code,
            ",".join(running) or "none",
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(self._code)
