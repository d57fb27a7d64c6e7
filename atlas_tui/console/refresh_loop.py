"""The console's data loop: one long-lived worker thread that owns the `ConsoleSource`.

The main screen runs `RefreshLoop.run` in a single Textual thread worker for the
whole session. The loop starts the source, takes a snapshot, hands it to `publish`
(which posts a message to the UI), waits for the refresh interval or a request, and
closes the source when the worker is cancelled. Invariants:

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
from collections.abc import Callable

from atlas_tui.console.source import ConsoleSnapshot, ConsoleSource

__all__ = ["CANCEL_POLL", "RefreshLoop"]

logger = logging.getLogger(__name__)

CANCEL_POLL = 0.1
"""Seconds between two checks for cancellation while the loop waits."""


class RefreshLoop:
    """Fetches snapshots from a source on a schedule and on request.

    Args:
        source: The data source; the loop starts and closes it.
        clock: Returns UTC epoch seconds; passed to the source as `now`.
        interval: Seconds between refreshes when `live`.
        live: When False, refresh once at start and then only on `request`.
        window_seconds: Initial chart window.
        publish: Called in the loop thread with each snapshot.
        report_error: Called in the loop thread with a one-line message when a start
            or refresh fails; repeats of the same message are not reported again.
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
        report_error: Callable[[str], None],
    ) -> None:
        self._source = source
        self._clock = clock
        self._interval = interval
        self._live = live
        self._window_seconds = window_seconds
        self._publish = publish
        self._report_error = report_error
        self._wake = threading.Event()
        self._started = False
        self._last_error: str | None = None

    @property
    def source(self) -> ConsoleSource:
        """The source this loop owns."""
        return self._source

    def request(self, window_seconds: float | None = None) -> None:
        """Ask for a refresh as soon as possible, optionally with a new chart window."""
        if window_seconds is not None:
            self._window_seconds = window_seconds
        self._wake.set()

    def run(self, is_cancelled: Callable[[], bool]) -> None:
        """Refresh until `is_cancelled()` returns True, then close the source.

        The source is closed even when `start` failed, because a failed start may
        have opened a connection; `ConsoleSource.close` must accept that.
        """
        try:
            while not is_cancelled():
                self._refresh_once()
                self._wait(is_cancelled)
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
            self._fail(err)
            return
        self._last_error = None
        self._publish(snapshot)

    def _fail(self, err: Exception) -> None:
        message = f"{'refresh' if self._started else 'start'} failed: {err}"
        if message == self._last_error:
            return
        self._last_error = message
        logger.error("console source %s", message, exc_info=err)
        self._report_error(message)

    def _wait(self, is_cancelled: Callable[[], bool]) -> None:
        waited = 0.0
        while not is_cancelled():
            if self._wake.wait(CANCEL_POLL):
                self._wake.clear()
                return
            waited += CANCEL_POLL
            if self._live and waited >= self._interval:
                return

    def _close_source(self) -> None:
        try:
            self._source.close()
        except Exception as err:  # worker boundary: the app is exiting, so log and go on
            logger.error("console source close failed: %s", err, exc_info=err)
