"""The local fallback when every notification channel is down: critical alerts go to syslog.

Where this sits: `OutboxSender.run()` runs `CriticalFallback.run()` next to its
channel workers. Every `CHECK_INTERVAL` seconds the fallback reads the channels'
health (`storage.outbox.channel_health`). When `all_channels_down` finds that every
configured channel has been failing for `FALLBACK_AFTER` seconds, each firing
critical alert (`storage.alerts.list_alerts`) is written to the local syslog socket
with priority crit and ident `atlas`, so an operator on the host finds it in the
journal without any network. The console calls `all_channels_down` for its banner.

Invariants: one syslog line per alert incident while the channels stay down, and
none for silenced alerts. The set of incidents already written lives in memory, so
a daemon restart during an outage writes each incident once more. A channel that has never been tried counts
as working. Nothing here decides on time except through the `now` it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import syslog
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from pathlib import Path
from typing import TypeVar

from atlas_tui.alerts.channels.render import format_time, format_value
from atlas_tui.config import Config
from storage.alerts import AlertRecord, list_alerts
from storage.db import open_store
from storage.outbox import ChannelHealthRecord, channel_health

__all__ = [
    "CHECK_INTERVAL",
    "FALLBACK_AFTER",
    "SYSLOG_IDENT",
    "SYSLOG_SOCKET",
    "CriticalFallback",
    "SyslogSocketWriter",
    "all_channels_down",
    "fallback_message",
]

logger = logging.getLogger(__name__)

FALLBACK_AFTER = 300.0
"""Seconds every channel must have been failing before critical alerts go to syslog."""

CHECK_INTERVAL = 15.0
"""Seconds between two checks of the channels' health."""

SYSLOG_SOCKET = "/dev/log"
"""The local syslog socket (systemd-journald or rsyslog listen here)."""

SYSLOG_IDENT = "atlas"
"""Program name in each syslog line."""

_MESSAGE_LIMIT = 1024
"""Bytes per datagram; RFC 3164 receivers accept at least this many."""

_DOWN_STATES = frozenset({"degraded", "failing", "misconfigured"})

_T = TypeVar("_T")


def all_channels_down(
    health: Iterable[ChannelHealthRecord],
    now: float,
    *,
    channels: Collection[str] | None = None,
    after: float = FALLBACK_AFTER,
) -> bool:
    """Return True when every channel has been failing, degraded or misconfigured for `after` seconds.

    Args:
        health: Channel health records from `storage.outbox.channel_health`.
        now: UTC epoch seconds of the check.
        channels: The configured channel names; None takes every channel in `health`.
            A configured channel without a health record has never failed, so the
            result is False.
        after: Seconds each channel must have been down.

    Returns:
        False when there is no channel at all.
    """
    by_name = {record.channel: record for record in health}
    names = list(by_name) if channels is None else list(channels)
    if not names:
        return False
    return all(name in by_name and _down_for(by_name[name], now, after) for name in names)


def fallback_message(alert: AlertRecord, channels: Collection[str]) -> str:
    """Build the syslog line for one critical alert."""
    labels = " ".join(f"{name}={value}" for name, value in sorted(alert.labels.items()) if name != "alertname")
    value = "" if alert.value is None else f" value={format_value(alert.value)}"
    since = "" if alert.fired_at is None else f" since {format_time(alert.fired_at)}"
    text = (f"critical alert firing and every notification channel is down: {alert.alert_id} "
            f"rule={alert.rule_id} {labels}{value}{since}; channels down: {', '.join(sorted(channels))}; "
            "run `atlas alerts list` on this host")
    return " ".join(text.split())


class SyslogSocketWriter:
    """Send each message as one syslog datagram with priority crit to a local socket.

    The line has the classic BSD form `<26>atlas[pid]: message` (facility daemon,
    severity crit, as in the `syslog` module's constants) that journald and rsyslog
    both parse. The C library's `syslog()` cannot be aimed at another socket and
    drops messages silently when `/dev/log` is missing, so this writer talks to the
    socket itself and raises `OSError` instead.
    """

    def __init__(self, path: str = SYSLOG_SOCKET, *, ident: str = SYSLOG_IDENT) -> None:
        """Write to the unix datagram socket at `path` as program `ident`."""
        self.path = path
        self.ident = ident

    def __call__(self, message: str) -> None:
        """Send one message.

        Raises:
            OSError: the socket is missing or refuses the datagram.
        """
        priority = syslog.LOG_DAEMON | syslog.LOG_CRIT
        data = f"<{priority}>{self.ident}[{os.getpid()}]: {message}".encode("utf-8", errors="replace")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(self.path)
            sock.send(data[:_MESSAGE_LIMIT])


class CriticalFallback:
    """Write firing critical alerts to syslog while every notification channel is down."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        writer: Callable[[str], None] | None = None,
        interval: float = CHECK_INTERVAL,
        after: float = FALLBACK_AFTER,
    ) -> None:
        """Prepare the fallback without opening anything until `run()`.

        Args:
            config: The effective configuration; its `channels` are the ones checked.
            data_dir: Data directory holding the store.
            clock: UTC epoch seconds, read once per check.
            writer: Sends one line to syslog; None uses `SyslogSocketWriter()` on `/dev/log`.
            interval: Seconds between two checks.
            after: Seconds every channel must have been down.
        """
        self.channels = tuple(config.channels)
        self.data_dir = data_dir
        self._clock = clock
        self._writer = writer or SyslogSocketWriter()
        self._interval = interval
        self._after = after
        self._written: set[tuple[str, str | None]] = set()
        self._down = False

    async def run(self, stopping: asyncio.Event) -> None:
        """Check every `interval` seconds until `stopping` is set."""
        conn: sqlite3.Connection | None = None
        try:
            while not stopping.is_set():
                try:
                    if conn is None:
                        conn = await _settled(asyncio.to_thread(open_store, self.data_dir))
                    await _settled(asyncio.to_thread(self.check, conn, self._clock()))
                except Exception as err:  # worker boundary: the next check tries again
                    logger.error("syslog fallback check failed: %s", err, exc_info=err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=self._interval)
        finally:
            if conn is not None:
                conn.close()

    def check(self, conn: sqlite3.Connection, now: float) -> list[str]:
        """Write each firing critical alert not written yet when every channel is down; blocking.

        Returns:
            The lines written in this check.
        """
        if not all_channels_down(channel_health(conn, now), now, channels=self.channels, after=self._after):
            if self._down:
                logger.info("notification channels working again; syslog fallback off")
            self._down = False
            return []
        if not self._down:
            logger.critical("every notification channel has been down for %.0f s; writing critical alerts "
                            "to syslog channels=%s", self._after, ",".join(self.channels))
        self._down = True

        # A silence means "notify nobody", and that includes syslog.
        alerts = [alert for alert in list_alerts(conn, state="firing", severity="critical") if not alert.silenced]
        written = [self._write(alert) for alert in alerts if (alert.alert_id, alert.incident_id) not in self._written]
        # Forgetting incidents that stopped firing keeps the set as small as the firing list.
        self._written = {(alert.alert_id, alert.incident_id) for alert in alerts}
        return written

    def _write(self, alert: AlertRecord) -> str:
        message = fallback_message(alert, self.channels)
        try:
            self._writer(message)
        except OSError as err:
            # The daemon's own log is the last place left for an operator on the host.
            logger.critical("%s (syslog unavailable: %s)", message, err)
        else:
            logger.warning("critical alert written to syslog alert=%s incident=%s", alert.alert_id, alert.incident_id)
        return message


def _down_for(record: ChannelHealthRecord, now: float, after: float) -> bool:
    return (
        record.state in _DOWN_STATES
        and record.failing_since is not None
        and now - record.failing_since >= after
    )


async def _settled(awaitable: Awaitable[_T]) -> _T:
    """Await a thread's result; if the caller is cancelled, wait for the thread before re-raising.

    The fallback's connection is closed when `run` returns, never while a thread still uses it.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.wait({task})
        raise
