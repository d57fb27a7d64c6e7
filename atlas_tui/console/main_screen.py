"""The console's main screen: header, pane bar, the panes, the footer and the data worker.

The screen runs `RefreshLoop.run` in one thread worker for the whole session and
receives its snapshots as `SnapshotReady` messages, which it hands to the header and
to every pane. Below `MIN_SIZE` it hides all of that behind `TooSmallNotice` (CSS
class `-too-small`) and brings it back on the next large enough resize. The panes
stay mounted, so the data keeps updating while they are hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer
from textual.worker import get_current_worker

from atlas_tui.console.pane import ConsolePane
from atlas_tui.console.panes import PaneSpec
from atlas_tui.console.refresh_loop import RefreshLoop
from atlas_tui.console.source import ConsoleSnapshot, ConsoleSource
from atlas_tui.console.time_windows import WINDOWS
from atlas_tui.console.widgets.header_bar import HeaderBar
from atlas_tui.console.widgets.pane_bar import PaneBar
from atlas_tui.console.widgets.too_small_notice import MIN_SIZE, TooSmallNotice

__all__ = ["MainScreen"]


class MainScreen(Screen[None]):
    """The screen under any overlay, for the whole session."""

    class SnapshotReady(Message):
        """A new snapshot from the data loop; a newer one replaces it in the queue."""

        def __init__(self, snapshot: ConsoleSnapshot) -> None:
            super().__init__()
            self.snapshot = snapshot
            """The data to show."""

        def can_replace(self, message: Message) -> bool:
            """Return True for a newer snapshot waiting in the queue, so this older one is skipped."""
            return isinstance(message, MainScreen.SnapshotReady)

    class SourceFailed(Message):
        """The data loop could not start the source or take a snapshot."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error
            """One-line description of the failure."""

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
            report_error=lambda error: self.post_message(self.SourceFailed(error)),
        )
        self._panes = tuple(panes)
        self.active_pane = self._panes[0].pane_id
        """DOM id of the pane on show."""
        self.snapshots_shown = 0
        """Snapshots handed to the panes so far; tests and screenshots wait on it."""

    def compose(self) -> ComposeResult:
        """Create the header, pane bar, panes, footer and the too-small notice."""
        with Vertical(id="body"):
            yield HeaderBar(id="header")
            yield PaneBar([(spec.key, spec.pane_id, spec.title) for spec in self._panes], id="pane-bar")
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
        """Hand a snapshot to the header and to every pane."""
        for header in self.query(HeaderBar):
            header.info = message.snapshot.header
        for pane in self.query(ConsolePane):
            pane.show_snapshot(message.snapshot)
        self.snapshots_shown += 1

    def on_main_screen_source_failed(self, message: SourceFailed) -> None:
        """Tell the user that data could not be read."""
        self.notify(message.error, title="Data source", severity="error", timeout=10)

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
    def too_small(self) -> bool:
        """Whether the notice is shown instead of the panes."""
        return self.has_class("-too-small")

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

    def _focus_active_pane(self) -> None:
        for pane in self.query(f"#{self.active_pane}").results(ConsolePane):
            pane.focus_content()
