"""`LocalSource`: the console's data from the SQLite store in the data directory.

Called only from the console's data loop thread. Each snapshot runs a few short
autocommit reads (`storage.metrics.latest`, `range_query`, `storage.status.
read_heartbeat`), each in its own short transaction; alert reads are in
`console.local_alerts`, analytics reads in `console.local_analytics`, and node and
probe reads in `console.local_nodes`. The table rows and charts are built by
`console.metric_views`, which `RemoteSource` shares. The console keeps no read
transaction open between refreshes, so it cannot pin the WAL. Its only writes are
the acknowledgements the user makes, through `atlas_tui.alerts.actions` like the
CLI and the API.

Who writes the store is decided from the daemon's heartbeat (`storage.status`):

- A heartbeat younger than `heartbeat_stale_after` (three collector intervals, at
  least 15 s) means a live daemon: the console only reads.
- No heartbeat row (a daemon that stopped cleanly deletes it), or a stale one while
  no process holds the daemon lock (`lockfile.lock_holder`), means no daemon: the
  console starts an `EmbeddedCollection` and writes the same store itself. This is
  checked at `start` and again on every snapshot, so an open console takes over
  when the daemon goes away.
- A stale heartbeat while a process still holds the lock means a hung daemon. The
  console keeps reading and shows `stale`, because it must not write beside a live
  daemon that may resume.
- While embedded, a live daemon heartbeat from another process stops the embedded
  collection, so there is one writer again.
- Before it starts writing, the console runs `PRAGMA quick_check` on the store
  (`storage.db.check_integrity`), so it does not add writes to a damaged file.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
from pathlib import Path
from typing import Literal

from atlas_tui.alerts.actions import acknowledge, default_actor, unacknowledge
from atlas_tui.config import Config
from atlas_tui.console.alert_models import AlertDetail, AlertRow, AlertsSnapshot
from atlas_tui.console.analytics_models import AnalyticsRead
from atlas_tui.console.embedded import EmbeddedCollection
from atlas_tui.console.local_alerts import alert_row, read_alert_detail, read_alerts
from atlas_tui.console.local_analytics import read_analytics
from atlas_tui.console.local_nodes import read_nodes
from atlas_tui.console.metric_views import CHART_POINTS, TABLE_METRICS, build_charts, store_range_reader, table_rows
from atlas_tui.console.source import ConsoleSnapshot, DaemonState, HeaderInfo
from atlas_tui.daemon import heartbeat_stale_after
from atlas_tui.lockfile import lock_holder
from storage.db import DB_FILENAME, check_integrity, open_store
from storage.metrics import latest
from storage.status import Heartbeat, daemon_state, read_heartbeat

__all__ = ["CHART_POINTS", "TABLE_METRICS", "LocalSource"]

logger = logging.getLogger(__name__)

WriterState = Literal["running", "hung", "absent"]
"""The writer of the store as `LocalSource` judges it. `running` is a live daemon.
`hung` is a daemon whose heartbeat is stale while it still holds the lock. `absent`
means no daemon: no heartbeat, or a stale one with the lock free."""


class LocalSource:
    """Reads the local store; collects in-process when no daemon does."""

    def __init__(self, config: Config, data_dir: Path, *, embedded: bool = True) -> None:
        """Prepare the source; nothing is opened until `start`.

        Args:
            config: The loaded config (collector interval, collector settings).
            data_dir: Directory holding `atlas.db`; created if missing.
            embedded: When False, never start collectors, only read (screenshots).
        """
        self._config = config
        self._data_dir = Path(data_dir)
        self._allow_embedded = embedded
        self._stale_after = heartbeat_stale_after(config.collectors.system.interval)
        self._conn: sqlite3.Connection | None = None
        self._collection: EmbeddedCollection | None = None
        self._host = ""
        self._lock_check_error: str | None = None

    @property
    def embedded(self) -> bool:
        """Whether this console currently runs the collectors itself."""
        return self._collection is not None

    def start(self, now: float) -> None:
        """Open the store and start embedded collection unless a live daemon writes it.

        Raises:
            storage.errors.StoreOpenError: the store cannot be opened.
            storage.errors.StoreCorruptError: embedded collection would start, but
                the store fails its integrity check.
            storage.errors.MigrationError: the schema cannot be migrated.
        """
        self._host = socket.gethostname()
        if self._conn is not None:
            # A failed earlier start may have opened the store before it raised.
            self._conn.close()
        self._conn = open_store(self._data_dir)
        heartbeat = read_heartbeat(self._conn)
        if self._writer_state(heartbeat, now) == "absent":
            self._start_collection()

    def snapshot(self, window_seconds: float, now: float) -> ConsoleSnapshot:
        """Read the header, the current values and the charts over `window_seconds`.

        Starts or stops embedded collection first when the daemon went away or came
        back (see the module docstring).

        Raises:
            storage.errors.StoreCorruptError: embedded collection would start, but
                the store fails its integrity check.
            sqlite3.Error: a read failed.
        """
        conn = self._connection()
        heartbeat = read_heartbeat(conn)
        state = self._follow_writer(heartbeat, now)
        values = latest(conn)
        newest = max((value.ts for value in values), default=None)
        header = HeaderInfo(
            host=heartbeat.host if state != "embedded" and heartbeat else self._host,
            daemon_state=state,
            newest_sample_age=None if newest is None else now - newest,
            problem=self._collection.error if self._collection else None,
        )
        charts = build_charts(values, store_range_reader(conn, CHART_POINTS), now - window_seconds, now)
        nodes = read_nodes(conn, self._config, values, now - window_seconds, now, CHART_POINTS)
        if nodes.lag_chart is not None:
            charts.append(nodes.lag_chart)
        return ConsoleSnapshot(
            header=header,
            window_seconds=window_seconds,
            now=now,
            rows=tuple(table_rows(values)),
            charts=tuple(charts),
            nodes=nodes.nodes,
            probes=nodes.probes,
        )

    def alerts(self, now: float) -> AlertsSnapshot:
        """Read the alerts, channel health and rule health (`console.local_alerts`)."""
        return read_alerts(self._connection(), self._config, now)

    def alert_detail(self, alert_id: str, now: float) -> AlertDetail | None:
        """Read one alert with its timeline and deliveries; None when it does not exist."""
        return read_alert_detail(self._connection(), self._config, alert_id, now)

    def analytics(self, range_seconds: float, now: float) -> AnalyticsRead:
        """Read the analytics summary and the 30-day DAU series (`console.local_analytics`)."""
        return read_analytics(self._connection(), self._config, range_seconds, now)

    def acknowledge(self, alert_id: str, message: str, now: float) -> AlertRow:
        """Acknowledge the alert as `default_actor()` (`$SUDO_USER`, else `$USER`).

        Raises:
            atlas_tui.alerts.actions.AlertNotFoundError: no alert has the id.
            atlas_tui.alerts.errors.AlertStateError: the alert has no open incident.
        """
        record = acknowledge(
            self._connection(), alert_id, by=default_actor(), message=message, now=now, config=self._config
        )
        logger.info("alert acknowledged from the console alert=%s", alert_id)
        return alert_row(record, now)

    def unacknowledge(self, alert_id: str, now: float) -> AlertRow:
        """Remove the alert's acknowledgement as `default_actor()`.

        Raises:
            atlas_tui.alerts.actions.AlertNotFoundError: no alert has the id.
            atlas_tui.alerts.errors.AlertStateError: the alert is not acknowledged.
        """
        record = unacknowledge(self._connection(), alert_id, by=default_actor(), now=now, config=self._config)
        logger.info("alert unacknowledged from the console alert=%s", alert_id)
        return alert_row(record, now)

    def close(self) -> None:
        """Stop embedded collection and close the store connection."""
        if self._collection is not None:
            self._collection.stop()
            self._collection = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("LocalSource.snapshot called before start(); call start(now) first")
        return self._conn

    def _writer_state(self, heartbeat: Heartbeat | None, now: float) -> WriterState:
        """Judge who writes the store from the heartbeat and, when it is stale, the daemon lock."""
        if heartbeat is not None and heartbeat.pid == os.getpid():
            return "absent"  # our own process never counts as a daemon
        state = daemon_state(heartbeat, now, self._stale_after)
        if state != "stale":
            return state
        try:
            holder = lock_holder(self._data_dir)
        except OSError as err:
            # Without knowing whether a daemon holds the lock, writing could put a
            # second writer beside it, so the console keeps reading.
            if str(err) != self._lock_check_error:
                logger.warning("daemon lock check failed data_dir=%s error=%s", self._data_dir, err)
            self._lock_check_error = str(err)
            return "hung"
        self._lock_check_error = None
        return "absent" if holder is None else "hung"

    def _follow_writer(self, heartbeat: Heartbeat | None, now: float) -> DaemonState:
        """Switch between reading and collecting as the daemon comes and goes."""
        state = self._writer_state(heartbeat, now)
        if self._collection is not None and state == "running":
            logger.info("daemon found, stopping embedded collection pid=%s", heartbeat.pid if heartbeat else None)
            self._collection.stop()
            self._collection = None
        elif self._collection is None and state == "absent" and self._allow_embedded:
            logger.info(
                "no live daemon, starting embedded collection data_dir=%s last_pid=%s",
                self._data_dir,
                heartbeat.pid if heartbeat else None,
            )
            self._start_collection()
        if self._collection is not None:
            return "embedded"
        return "running" if state == "running" else "stale"

    def _start_collection(self) -> None:
        if not self._allow_embedded:
            return
        check_integrity(self._connection(), self._data_dir / DB_FILENAME)
        self._collection = EmbeddedCollection(self._config, self._data_dir)
        self._collection.start()
