"""Config reload for the running daemon: read the file again on SIGHUP and apply what can change live.

`atlas daemon` builds one `ConfigReloader` after its components exist, and its SIGHUP
handler calls `request()`. A reload reads and checks the file as `atlas config check`
does. An invalid file is rejected with one log line per problem, and the running
config stays in force.

The keys in `LIVE_KEYS` change live. Alert rules and the evaluation interval apply
from the alert service's next cycle. New channels replace the outbox sender, whose
in-flight sends get its stop grace while unsent notices stay queued. New collector
settings rebuild the collectors on the open store. Analytics apps and their ingest
keys, storage retention, the maintenance interval and the history length are read
where they are used. A new `backup` section changes the running backup schedule's
sets, frequency, retention and passphrase source (its repository directory needs a
restart). Every other top-level key, such as `port` and `api`, needs a
restart, so its running value stays and the reload logs which keys it kept. The data
directory is not part of the config and cannot change either.

Invariants: reloads run one at a time on the event loop. Alert instances, queued
notices, the store connections of the collectors and the alert service, and the
API's open connections survive a reload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atlas_tui.alerts.outbox import OutboxSender
from atlas_tui.config import Config, load_config
from atlas_tui.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from atlas_tui.alerts.service import AlertService
    from atlas_tui.backup.service import BackupService
    from atlas_tui.collection import CollectionPipeline

__all__ = ["LIVE_KEYS", "ConfigChange", "ConfigReloader", "ReloadableSender", "compare_configs", "read_config"]

logger = logging.getLogger(__name__)

LIVE_KEYS = frozenset(
    {
        "alert_rules",
        "alerting",
        "channels",
        "collectors",
        "analytics",
        "storage",
        "max_history_hours",
        "metrics_refresh_interval",
        "backup",
    }
)
"""Top-level config keys a reload applies; a change to any other key needs a restart."""

_ALERT_KEYS = ("alert_rules", "alerting", "channels")
_COLLECTOR_KEYS = ("collectors", "analytics")


@dataclass(frozen=True)
class ConfigChange:
    """The top-level keys that differ between the running config and the file."""

    live: tuple[str, ...]
    """Changed keys that a reload applies."""
    restart: tuple[str, ...]
    """Changed keys whose running value stays until a restart."""

    @property
    def empty(self) -> bool:
        """True when the file equals the running config."""
        return not self.live and not self.restart


def compare_configs(running: Config, loaded: Config) -> ConfigChange:
    """Return which top-level keys of `loaded` differ from `running`, split by `LIVE_KEYS`."""
    changed = [key for key in type(running).model_fields if getattr(running, key) != getattr(loaded, key)]
    return ConfigChange(
        live=tuple(key for key in changed if key in LIVE_KEYS),
        restart=tuple(key for key in changed if key not in LIVE_KEYS),
    )


def read_config(path: Path) -> Config:
    """Read `path` and check its alert rules as `atlas config check` does. Blocking.

    Raises:
        ConfigError: the file is missing or invalid, or a rule does not parse.
    """
    # Imported here: cli_alerts pulls in the channel senders, which a reload needs anyway
    # but a plain import of this module should not.
    from atlas_tui.cli_alerts import check_alerting

    config = load_config(path)
    errors = check_alerting(config).errors
    if errors:
        raise ConfigError(str(path), errors)
    return config


class ReloadableSender:
    """The outbox sender for the current channels; a reload swaps in a new one.

    It offers what the daemon calls on an `OutboxSender` (`run`, `stop`, `wake`), so
    the alert service and the supervisor need not know about reloads.
    """

    def __init__(self, build: Callable[[Config], OutboxSender], config: Config) -> None:
        """Build the first sender with `build(config)`; nothing runs until `run()`."""
        self._build = build
        self.current = build(config)
        """The sender of the running channels."""
        self._stopping = False

    async def run(self) -> None:
        """Run the current sender, and each one that replaces it, until `stop()`."""
        while True:
            sender = self.current
            await sender.run()
            if self._stopping or sender is self.current:
                return

    async def stop(self) -> None:
        """Stop the current sender; see `OutboxSender.stop` for the grace given to sends."""
        self._stopping = True
        await self.current.stop()

    def wake(self) -> None:
        """Wake the current sender's idle workers; safe to call from any thread."""
        self.current.wake()

    async def replace(self, config: Config) -> None:
        """Stop the current sender and let `run()` start one for `config`'s channels."""
        old, self.current = self.current, self._build(config)
        await old.stop()


class ConfigReloader:
    """Read the config file again on request and apply the live keys to the running daemon."""

    def __init__(
        self,
        path: Path | None,
        running: Config,
        *,
        pipeline: CollectionPipeline,
        service: AlertService,
        sender: ReloadableSender,
        app: FastAPI | None,
        on_applied: Callable[[Config], None],
        backup: Callable[[], BackupService | None] = lambda: None,
    ) -> None:
        """Keep the components a reload changes.

        Args:
            path: The config file the daemon started with; None when it runs on defaults.
            running: The config in force.
            pipeline: Rebuilt when collectors or analytics apps change.
            service: Given new rules, channels and interval.
            sender: Replaced when channels change.
            app: The API app, whose `state.config` (and analytics state) is updated.
            on_applied: Called with the new config after it was applied.
            backup: Returns the running backup schedule, given the new `backup` section;
                None when the daemon started without one.
        """
        self.path = path
        self.running = running
        self._pipeline = pipeline
        self._service = service
        self._sender = sender
        self._app = app
        self._on_applied = on_applied
        self._backup = backup
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        """Start a reload, or queue one more if a reload is in progress. Call on the loop."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._reload_until_settled(), name="config-reload")

    async def reload(self) -> ConfigChange | None:
        """Read the file and apply it; return the change, or None when it was rejected."""
        if self.path is None:
            logger.warning("config reload skipped: the daemon runs on defaults; start it with --config FILE to reload")
            return None
        try:
            loaded = await asyncio.to_thread(read_config, self.path)
        except ConfigError as err:
            for problem in err.problems:
                logger.error("config reload rejected path=%s: %s", self.path, problem)
            logger.error("config reload rejected path=%s; the running config stays in force", self.path)
            return None

        change = compare_configs(self.running, loaded)
        if change.restart:
            logger.warning(
                "config keys need a restart keys=%s path=%s; their running values stay until then",
                ",".join(change.restart),
                self.path,
            )
        applied = loaded.model_copy(update={key: getattr(self.running, key) for key in change.restart})
        await self._apply(applied, change)
        logger.info("config reloaded path=%s changed=%s", self.path, ",".join(change.live) or "none")
        return change

    async def _reload_until_settled(self) -> None:
        while True:
            self._again = False
            try:
                await self.reload()
            except Exception as err:  # noqa: BLE001 - worker boundary: a failed reload must not stop the daemon
                logger.error("config reload failed path=%s: %s", self.path, err, exc_info=err)
            if not self._again:
                return

    async def _apply(self, config: Config, change: ConfigChange) -> None:
        changed = set(change.live)
        self.running = config
        self._on_applied(config)
        if changed & set(_COLLECTOR_KEYS):
            self._pipeline.reconfigure(config)
        if changed & set(_ALERT_KEYS):
            self._service.reconfigure(config)
        if self._app is not None:
            _update_app(self._app, config)
        if "channels" in changed:
            await self._sender.replace(config)
        if "backup" in changed:
            schedule = self._backup()
            if schedule is not None:
                schedule.reconfigure(config.backup)
            else:
                logger.warning("backup schedule not running: it starts with the new backup section after a restart")


def _update_app(app: FastAPI, config: Config) -> None:
    """Point the API at `config`: rule names for acknowledgements, analytics ingest keys."""
    app.state.config = config
    ingest: Any = getattr(app.state, "analytics", None)
    if ingest is not None:
        # NOTE: the ingest rate limiters keep the limits they were built with until a restart.
        ingest.config = config.analytics
