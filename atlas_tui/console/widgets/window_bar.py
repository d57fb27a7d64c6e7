"""The Metrics pane's line that lists the chart windows and marks the selected one.

Labels only; the pane's `w`/`W` bindings change the window and call `set_active`.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from atlas_tui.console.time_windows import WINDOWS, TimeWindow

__all__ = ["WindowBar"]


class WindowBar(Horizontal):
    """`Window 5m 1h 24h 7d` with the selected window highlighted."""

    DEFAULT_CSS = """
    WindowBar {
        height: 1;
        width: 1fr;
    }
    WindowBar Label {
        width: auto;
        padding: 0 1;
        text-wrap: nowrap;
    }
    WindowBar #window-hint {
        width: 1fr;
        text-overflow: ellipsis;
    }
    """

    def compose(self) -> ComposeResult:
        """Create the caption, one label per window and the key hint."""
        yield Label("Window", id="window-caption")
        for window in WINDOWS:
            yield Label(window.label, id=f"window-{window.label}", classes="window-choice")
        yield Label("w next · W previous · r refresh", id="window-hint")

    def set_active(self, window: TimeWindow) -> None:
        """Highlight `window`."""
        for label in self.query(".window-choice").results(Label):
            label.set_class(label.id == f"window-{window.label}", "-active")
