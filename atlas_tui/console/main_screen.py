"""The console's main screen: header, banner, pane bar, the panes, the footer and the data worker.

The screen runs `RefreshLoop.run` in one thread worker for the whole session. It
receives the loop's snapshots as `SnapshotReady`, alerts reads as `AlertsReady` and
analytics reads as `AnalyticsReady` messages. It hands them to the header, the
all-channels-down banners and every pane. It also runs what panes ask of the source (acknowledge, unacknowledge, alert
details) as `SourceCall`s on that loop, so the UI thread never touches the store,
and shows their outcome (`CallFinished`, `DetailLoaded`). When the store cannot be
opened or read, the header shows the error until the next snapshot arrives. While no
snapshot has arrived yet, a `StoreErrorNotice` (CSS class `-store-error`) also takes
the place of the panes and explains what to do. Below `MIN_SIZE` it hides
all of that behind `TooSmallNotice` (CSS class `-too-small`) and brings it back on
the next large enough resize. The panes stay mounted, so the data keeps updating
while they are hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer
from textual.worker import get_current_worker

from atlas_tui.console.alert_detail_screen import AlertDetailScreen
from atlas_tui.console.alert_models import AlertDetail, AlertRow, AlertsSnapshot
from atlas_tui.console.alerts_pane import AlertsPane
from atlas_tui.console.analytics_models import AnalyticsRead
from atlas_tui.console.analytics_pane import AnalyticsPane
from atlas_tui.console.formatting import format_duration_short
from atlas_tui.console.pane import ConsolePane
from atlas_tui.console.panes import PaneSpec
from atlas_tui.console.refresh_loop import RefreshLoop, SourceCall
from atlas_tui.console.source import ConsoleSnapshot, ConsoleSource
from atlas_tui.console.time_windows import WINDOWS
from atlas_tui.console.widgets.channels_banner import ChannelsDownBanner
from atlas_tui.console.widgets.header_bar import HeaderBar
from atlas_tui.console.widgets.pane_bar import PaneBar
from atlas_tui.console.widgets.store_error_notice import StoreErrorNotice
from atlas_tui.console.widgets.too_small_notice import MIN_SIZE, TooSmallNotice

__all__ = ["MainScreen"]


class MainScreen(Screen[None]):
    """The screen under any overlay, for the whole session."""

    BINDINGS = [
        # The Metrics pane binds `r` too; this one serves while the panes are hidden
        # behind the store error notice and cannot have the focus.
        Binding("r", "retry", "Retry", show=False, tooltip="Read the store again now"),
    ]

    class SnapshotReady(Message):
        """A new snapshot from the data loop; a newer one replaces it in the queue."""

        def __init__(self, snapshot: ConsoleSnapshot) -> None:
            super().__init__()
            self.snapshot = snapshot
            """The data to show."""

        def can_replace(self, message: Message) -> bool:
            """Return True for a newer snapshot waiting in the queue, so this older one is skipped."""
            return isinstance(message, MainScreen.SnapshotReady)

    class AlertsReady(Message):
        """A new alerts read from the data loop; a newer one replaces it in the queue."""

        def __init__(self, alerts: AlertsSnapshot) -> None:
            super().__init__()
            self.alerts = alerts
            """The alerts, counts, channel health and rule health to show."""

        def can_replace(self, message: Message) -> bool:
            """Return True for a newer alerts read waiting in the queue, so this older one is skipped."""
            return isinstance(message, MainScreen.AlertsReady)

    class AnalyticsReady(Message):
        """A new analytics read from the data loop; a newer one replaces it in the queue."""

        def __init__(self, read: AnalyticsRead) -> None:
            super().__init__()
            self.read = read
            """The summary and DAU series to show."""

        def can_replace(self, message: Message) -> bool:
            """Return True for a newer analytics read waiting in the queue, so this older one is skipped."""
            return isinstance(message, MainScreen.AnalyticsReady)

    class CallFinished(Message):
        """An acknowledgement or its removal ran on the source."""

        def __init__(self, description: str, error: Exception | None) -> None:
            super().__init__()
            self.description = description
            """What was done, for the notification (`alert_3 acknowledged`)."""
            self.error = error
            """Why it failed, or None."""

    class DetailLoaded(Message):
        """The data loop read the details of an alert."""

        def __init__(self, alert_id: str, detail: AlertDetail | None, error: Exception | None) -> None:
            super().__init__()
            self.alert_id = alert_id
            """The alert asked for."""
            self.detail = detail
            """The details; None when the alert does not exist or the read failed."""
            self.error = error
            """Why the read failed, or None."""

    class SourceFailed(Message):
        """The data loop could not start the source, take a snapshot or read the alerts."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error
            """One-line description of the failure."""

    class StoreFailed(Message):
        """The data loop could not start the source or take a snapshot; the screen keeps it on show."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error
            """The error text, for example `/tmp/x is a file, not a directory; ...`."""

    def __init__(
        self,
        source: ConsoleSource,
        *,
        clock: Callable[[], float],
        refresh_interval: float,
        live: bool,
        panes: Sequence[PaneSpec],
    ) -> None:
        """Create the screen and its data loop.

        Args:
            source: Where data comes from; the data loop starts and closes it.
            clock: Returns UTC epoch seconds for each refresh.
            refresh_interval: Seconds between refreshes when `live`.
            live: When False, data is read once at start and on `r` only.
            panes: The registered panes; the first is shown at start.
        """
        super().__init__()
        self._loop = RefreshLoop(
            source,
            clock=clock,
            interval=refresh_interval,
            live=live,
            window_seconds=WINDOWS[0].seconds,
            publish=lambda snapshot: self.post_message(self.SnapshotReady(snapshot)),
            publish_alerts=lambda alerts: self.post_message(self.AlertsReady(alerts)),
            report_error=lambda error: self.post_message(self.SourceFailed(error)),
            report_store_error=lambda error: self.post_message(self.StoreFailed(error)),
            publish_analytics=lambda read: self.post_message(self.AnalyticsReady(read)),
        )
        if live:
            self._retry_hint = f"The console tries again every {format_duration_short(refresh_interval)}; r tries now, q quits."
        else:
            self._retry_hint = "r tries again, q quits."
        self._panes = tuple(panes)
        self.active_pane = self._panes[0].pane_id
        """DOM id of the pane on show."""
        self.snapshots_shown = 0
        """Snapshots handed to the panes so far; tests and screenshots wait on it."""
        self.alerts_shown = 0
        """Alerts reads handed to the panes so far; tests and screenshots wait on it."""
        self.analytics_shown = 0
        """Analytics reads handed to the panes so far; tests and screenshots wait on it."""
        self.latest_alerts: AlertsSnapshot | None = None
        """The newest alerts read; None before the first."""
        self.calls_pending = 0
        """Source calls submitted whose outcome has not been shown yet; tests wait on it."""
        self.store_error: str | None = None
        """Why the store could not be opened or read; None once a snapshot arrived."""

    def compose(self) -> ComposeResult:
        """Create the header, pane bar, panes, footer and the too-small notice."""
        with Vertical(id="body"):
            yield HeaderBar(id="header")
            yield ChannelsDownBanner(id="banner")
            yield PaneBar([(spec.key, spec.pane_id, spec.title) for spec in self._panes], id="pane-bar")
            yield StoreErrorNotice(id="store-error")
            with ContentSwitcher(initial=self.active_pane, id="panes"):
                for spec in self._panes:
                    yield spec.pane_class(id=spec.pane_id)
        yield Footer()
        yield TooSmallNotice(id="too-small")

    def on_mount(self) -> None:
        """Start the data worker and lay out for the current size."""
        for bar in self.query(PaneBar):
            bar.set_active(self.active_pane)
        self._apply_size(self.size)
        self._run_loop()

    def on_resize(self, event: Resize) -> None:
        """Switch between the panes and the too-small notice."""
        self._apply_size(event.size)

    def on_main_screen_snapshot_ready(self, message: SnapshotReady) -> None:
        """Hand a snapshot to the header and to every pane, and clear a store error."""
        for header in self.query(HeaderBar):
            header.info = message.snapshot.header
        for pane in self.query(ConsolePane):
            pane.show_snapshot(message.snapshot)
        self.snapshots_shown += 1
        if self.store_error is not None:
            self._show_store_error(None)

    def on_main_screen_alerts_ready(self, message: AlertsReady) -> None:
        """Hand an alerts read to the header, every banner and every pane."""
        alerts = message.alerts
        self.latest_alerts = alerts
        for header in self.query(HeaderBar):
            header.alert_counts = alerts.counts
        for screen in self.app.screen_stack:
            for banner in screen.query(ChannelsDownBanner):
                banner.show_down(alerts.channels_down_for)
        for pane in self.query(ConsolePane):
            pane.show_alerts(alerts)
        self.alerts_shown += 1

    def on_main_screen_analytics_ready(self, message: AnalyticsReady) -> None:
        """Hand an analytics read to every pane."""
        for pane in self.query(ConsolePane):
            pane.show_analytics(message.read)
        self.analytics_shown += 1

    def on_analytics_pane_range_changed(self, message: AnalyticsPane.RangeChanged) -> None:
        """Wake the data loop with the new report range."""
        message.stop()
        self._loop.request(analytics_seconds=message.range_seconds)

    def on_alerts_pane_alert_command(self, message: AlertsPane.AlertCommand) -> None:
        """Acknowledge or unacknowledge an alert through the data loop."""
        message.stop()
        action, alert_id, note = message.action, message.alert_id, message.note
        description = f"{alert_id} acknowledged" if action == "acknowledge" else f"{alert_id} acknowledgement removed"
        self._submit(
            SourceCall(
                name=f"{action} alert={alert_id}",
                run=lambda source, now: _run_command(source, action, alert_id, note, now),
                done=lambda _result, error: self.post_message(self.CallFinished(description, error)),
            )
        )

    def on_main_screen_call_finished(self, message: CallFinished) -> None:
        """Report the outcome of an acknowledgement."""
        self.calls_pending -= 1
        if message.error is None:
            self.notify(message.description, timeout=4)
        else:
            self.notify(str(message.error), title="Not done", severity="error", timeout=8)

    def on_alerts_pane_detail_requested(self, message: AlertsPane.DetailRequested) -> None:
        """Open the detail screen and ask the data loop for its data."""
        message.stop()
        down_for = self.latest_alerts.channels_down_for if self.latest_alerts else None
        self.app.push_screen(AlertDetailScreen(message.alert_id, reload=self.load_detail, channels_down_for=down_for))
        self.load_detail(message.alert_id)

    def on_main_screen_detail_loaded(self, message: DetailLoaded) -> None:
        """Hand loaded details to the open detail screens of that alert."""
        self.calls_pending -= 1
        for screen in self.app.screen_stack:
            if not isinstance(screen, AlertDetailScreen) or screen.alert_id != message.alert_id:
                continue
            if message.detail is not None:
                screen.show_detail(message.detail)
            elif message.error is not None:
                screen.show_missing(f"could not be read: {message.error}")
            else:
                screen.show_missing("not found; it may have been removed")

    def load_detail(self, alert_id: str) -> None:
        """Ask the data loop to read the details of `alert_id`; `DetailLoaded` brings them."""

        def done(result: object, error: Exception | None) -> None:
            detail = result if isinstance(result, AlertDetail) else None
            self.post_message(self.DetailLoaded(alert_id, detail, error))

        self._submit(
            SourceCall(
                name=f"detail alert={alert_id}",
                run=lambda source, now: source.alert_detail(alert_id, now),
                done=done,
            )
        )

    def on_main_screen_source_failed(self, message: SourceFailed) -> None:
        """Tell the user that data could not be read."""
        self.notify(message.error, title="Data source", severity="error", timeout=10)

    def on_main_screen_store_failed(self, message: StoreFailed) -> None:
        """Keep the store error on show until a snapshot arrives."""
        self._show_store_error(message.error)

    def action_retry(self) -> None:
        """Ask the data loop to open or read the store again now."""
        self._loop.request()

    def on_console_pane_refresh_requested(self, message: ConsolePane.RefreshRequested) -> None:
        """Wake the data loop, with the new chart window if the pane sent one."""
        message.stop()
        self._loop.request(message.window_seconds)

    def show_pane(self, pane_id: str) -> None:
        """Show the pane with DOM id `pane_id` and focus its content."""
        self.active_pane = pane_id
        for switcher in self.query(ContentSwitcher):
            switcher.current = pane_id
        for bar in self.query(PaneBar):
            bar.set_active(pane_id)
        self._focus_active_pane()

    @property
    def showing_store_error(self) -> bool:
        """Whether the store error notice is shown instead of the panes."""
        return self.has_class("-store-error")

    @property
    def too_small(self) -> bool:
        """Whether the notice is shown instead of the panes."""
        return self.has_class("-too-small")

    def _submit(self, call: SourceCall) -> None:
        self.calls_pending += 1
        self._loop.submit(call)

    @work(thread=True, exclusive=True, group="source", name="console data loop")
    def _run_loop(self) -> None:
        worker = get_current_worker()
        self._loop.run(lambda: worker.is_cancelled)

    def _apply_size(self, size: Size) -> None:
        min_width, min_height = MIN_SIZE
        too_small = size.width < min_width or size.height < min_height
        was_too_small = self.too_small
        self.set_class(too_small, "-too-small")
        for notice in self.query(TooSmallNotice):
            notice.show_size(size.width, size.height)
        if was_too_small and not too_small:
            self._focus_active_pane()

    def _show_store_error(self, error: str | None) -> None:
        """Show `error` in the header, and in place of the panes while no data has arrived."""
        self.store_error = error
        for header in self.query(HeaderBar):
            header.store_error = error
        was_shown = self.showing_store_error
        self.set_class(error is not None and self.snapshots_shown == 0, "-store-error")
        if error is not None:
            for notice in self.query(StoreErrorNotice):
                notice.show_error(error, self._retry_hint)
        if was_shown and not self.showing_store_error:
            self._focus_active_pane()

    def _focus_active_pane(self) -> None:
        for pane in self.query(f"#{self.active_pane}").results(ConsolePane):
            pane.focus_content()


def _run_command(
    source: ConsoleSource, action: Literal["acknowledge", "unacknowledge"], alert_id: str, note: str, now: float
) -> AlertRow:
    if action == "acknowledge":
        return source.acknowledge(alert_id, note, now)
    return source.unacknowledge(alert_id, now)
