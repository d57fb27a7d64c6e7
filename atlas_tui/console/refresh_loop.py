"""The console's data loop: one long-lived worker thread that owns the `ConsoleSource`.

The main screen runs `RefreshLoop.run` in a single Textual thread worker for the
whole session. The loop starts the source, takes a snapshot and an alerts read,
hands them to `publish` and `publish_alerts` (which post messages to the UI), and
waits. While it waits it reads the alerts again every `alerts_interval` seconds, so
channel health stays fresh even with a long metrics interval. A request (`r`, a new
chart window) or a submitted `SourceCall` (acknowledge, alert details) wakes it at
once. Calls run first, and then a full refresh shows their effect. Analytics reads
(`publish_analytics`) follow a refresh at most every `analytics_interval` seconds,
because a 30-day report costs more than a snapshot, and at once after any request
(`r`, a new report range). The loop closes the source when the worker is cancelled.
Invariants:

- Only this thread calls the source, so the UI thread never touches SQLite or psutil
  and a store connection is used by one thread at a time.
- One loop for the session, not one worker per tick: a cancelled thread worker keeps
  running, so workers started per tick pile up when a refresh is slow.
- Waits are sliced so cancellation is noticed within `CANCEL_POLL` seconds; the
  app's exit waits for this thread.
- This loop is the scheduler of the console, so it is the one place that reads the
  clock (through the injected `clock`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from atlas_tui.console.alert_models import AlertsSnapshot
from atlas_tui.console.analytics_models import ANALYTICS_RANGES, AnalyticsRead
from atlas_tui.console.source import ConsoleSnapshot, ConsoleSource
from atlas_tui.errors import AtlasError

__all__ = ["ALERTS_INTERVAL", "ANALYTICS_INTERVAL", "CANCEL_POLL", "RefreshLoop", "SourceCall", "SourceUnavailableError"]

logger = logging.getLogger(__name__)

CANCEL_POLL = 0.1
"""Seconds between two checks for cancellation while the loop waits."""

ALERTS_INTERVAL = 2.0
"""Maximum seconds between two alert reads when live: channel health must be at most
2 s old on screen. A shorter metrics interval reads alerts with every refresh."""

ANALYTICS_INTERVAL = 60.0
"""Minimum seconds between two scheduled analytics reads; rollups change hourly, so
a minute keeps the ingest counters fresh enough without rereading 30 days each tick."""


class SourceUnavailableError(RuntimeError):
    """Raised to a `SourceCall` when the source could not be started."""


@dataclass(frozen=True, slots=True)
class SourceCall:
    """One piece of work for the loop thread: a call on the source and where its result goes."""

    name: str
    """Description of the call for logs (`acknowledge alert=alert_3`)."""
    run: Callable[[ConsoleSource, float], object]
    """Called in the loop thread with the source and `now`; may block and may raise."""
    done: Callable[[object, Exception | None], None]
    """Called in the loop thread with the result, or None and the error; it should
    only post a message to the UI."""


class RefreshLoop:
    """Fetches snapshots from a source on a schedule and on request, and runs calls on it.

    Args:
        source: The data source; the loop starts and closes it.
        clock: Returns UTC epoch seconds; passed to the source as `now`.
        interval: Seconds between refreshes when `live`.
        live: When False, refresh once at start and then only on `request` or `submit`.
        window_seconds: Initial chart window.
        publish: Called in the loop thread with each snapshot.
        publish_alerts: Called in the loop thread with each alerts read.
        report_error: Called in the loop thread with a one-line message when a start
            or refresh fails; repeats of the same message are not reported again.
        alerts_interval: Seconds between alert reads while waiting, when `live`.
        report_store_error: Called in the loop thread with the error text when the
            source fails to start or to take a snapshot, so the screen can keep it
            on show until the next snapshot arrives; not called for repeats of the
            same message, nor for failed alert reads.
        publish_analytics: Called in the loop thread with each analytics read; None
            reads no analytics.
        analytics_seconds: Initial analytics report range.
        analytics_interval: Minimum seconds between scheduled analytics reads.
    """

    def __init__(
        self,
        source: ConsoleSource,
        *,
        clock: Callable[[], float],
        interval: float,
        live: bool,
        window_seconds: float,
        publish: Callable[[ConsoleSnapshot], None],
        publish_alerts: Callable[[AlertsSnapshot], None],
        report_error: Callable[[str], None],
        alerts_interval: float = ALERTS_INTERVAL,
        report_store_error: Callable[[str], None] | None = None,
        publish_analytics: Callable[[AnalyticsRead], None] | None = None,
        analytics_seconds: float = ANALYTICS_RANGES[0].seconds,
        analytics_interval: float = ANALYTICS_INTERVAL,
    ) -> None:
        self._source = source
        self._clock = clock
        self._interval = interval
        self._live = live
        self._window_seconds = window_seconds
        self._publish = publish
        self._publish_alerts = publish_alerts
        self._report_error = report_error
        self._report_store_error = report_store_error
        self._alerts_interval = min(alerts_interval, interval)
        self._wake = threading.Event()
        self._calls: deque[SourceCall] = deque()
        self._started = False
        self._last_errors: dict[str, str] = {}
        self._publish_analytics = publish_analytics
        self._analytics_seconds = analytics_seconds
        self._analytics_interval = analytics_interval
        self._analytics_due = True
        self._analytics_read_at: float | None = None

    @property
    def source(self) -> ConsoleSource:
        """The source this loop owns."""
        return self._source

    def request(self, window_seconds: float | None = None, analytics_seconds: float | None = None) -> None:
        """Ask for a refresh, analytics included, as soon as possible, optionally with a new chart window or report range."""
        if window_seconds is not None:
            self._window_seconds = window_seconds
        if analytics_seconds is not None:
            self._analytics_seconds = analytics_seconds
        self._analytics_due = True
        self._wake.set()

    def submit(self, call: SourceCall) -> None:
        """Queue `call` for the loop thread and wake it; a full refresh follows the call.

        Safe to call from any thread.
        """
        self._calls.append(call)
        self._wake.set()

    def run(self, is_cancelled: Callable[[], bool]) -> None:
        """Refresh until `is_cancelled()` returns True, then close the source.

        The source is closed even when `start` failed, because a failed start may
        have opened a connection; `ConsoleSource.close` must accept that. Calls
        still queued at that point are dropped.
        """
        try:
            while not is_cancelled():
                self._refresh_once()
                self._wait(is_cancelled)
                self._run_calls()
        finally:
            self._close_source()

    def _refresh_once(self) -> None:
        now = self._clock()
        try:
            if not self._started:
                self._source.start(now)
                self._started = True
            snapshot = self._source.snapshot(self._window_seconds, now)
        except Exception as err:  # worker boundary: show the failure, keep the loop alive
            self._fail("start" if not self._started else "refresh", err)
            return
        self._last_errors.pop("refresh", None)
        self._last_errors.pop("start", None)
        self._publish(snapshot)
        self._refresh_alerts(now)
        self._refresh_analytics(now)

    def _refresh_alerts(self, now: float) -> None:
        try:
            alerts = self._source.alerts(now)
        except Exception as err:  # worker boundary: the metrics keep refreshing without alerts
            self._fail("alerts refresh", err)
            return
        self._last_errors.pop("alerts refresh", None)
        self._publish_alerts(alerts)

    def _refresh_analytics(self, now: float) -> None:
        if self._publish_analytics is None:
            return
        last = self._analytics_read_at
        if not self._analytics_due and last is not None and now - last < self._analytics_interval:
            return
        self._analytics_due = False
        self._analytics_read_at = now
        try:
            read = self._source.analytics(self._analytics_seconds, now)
        except Exception as err:  # worker boundary: metrics and alerts keep refreshing without analytics
            self._fail("analytics refresh", err)
            return
        self._last_errors.pop("analytics refresh", None)
        self._publish_analytics(read)

    def _fail(self, what: str, err: Exception) -> None:
        message = f"{what} failed: {err}"
        if self._last_errors.get(what) == message:
            return
        self._last_errors[what] = message
        logger.error("console source %s", message, exc_info=err)
        self._report_error(message)
        if self._report_store_error is not None and what in ("start", "refresh"):
            self._report_store_error(str(err) or type(err).__name__)

    def _wait(self, is_cancelled: Callable[[], bool]) -> None:
        waited = 0.0
        since_alerts = 0.0
        while not is_cancelled():
            if self._wake.wait(CANCEL_POLL):
                self._wake.clear()
                return
            if not self._live:
                continue
            waited += CANCEL_POLL
            since_alerts += CANCEL_POLL
            if waited >= self._interval:
                return
            if since_alerts >= self._alerts_interval and self._started:
                self._refresh_alerts(self._clock())
                since_alerts = 0.0

    def _run_calls(self) -> None:
        while self._calls:
            call = self._calls.popleft()
            if not self._started:
                reason = self._last_errors.get("start", "the source has not started")
                call.done(None, SourceUnavailableError(f"{call.name} not possible: {reason}"))
                continue
            self._run_call(call)

    def _run_call(self, call: SourceCall) -> None:
        try:
            result = call.run(self._source, self._clock())
        except AtlasError as err:
            # An expected refusal, such as acknowledging a resolved alert: the user sees it.
            logger.info("console %s rejected: %s", call.name, err)
            call.done(None, err)
        except Exception as err:  # worker boundary: hand the failure to the UI
            logger.error("console %s failed: %s", call.name, err, exc_info=err)
            call.done(None, err)
        else:
            call.done(result, None)

    def _close_source(self) -> None:
        try:
            self._source.close()
        except Exception as err:  # worker boundary: the app is exiting, so log and go on
            logger.error("console source close failed: %s", err, exc_info=err)
