"""The line under the header that names the panes and their keys (`1 Metrics`).

The main screen builds it from the pane registry and calls `set_active` when the
user switches panes. It is not focusable: panes are switched with the number keys.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

__all__ = ["PaneBar"]


class PaneBar(Horizontal):
    """One label per pane; the active one has the `-active` class."""

    DEFAULT_CSS = """
    PaneBar {
        height: 1;
        width: 1fr;
    }
    PaneBar Label {
        width: auto;
        padding: 0 1;
        text-wrap: nowrap;
    }
    """

    def __init__(self, entries: Sequence[tuple[str, str, str]], *, id: str | None = None) -> None:
        """Create the bar.

        Args:
            entries: `(key, pane_id, title)` per pane, in key order.
            id: DOM id of the bar.
        """
        super().__init__(id=id)
        self._entries = tuple(entries)

    def compose(self) -> ComposeResult:
        """Create one label per pane."""
        for key, pane_id, title in self._entries:
            yield Label(f"{key} {title}", id=f"pane-tab-{pane_id}", classes="pane-tab")

    def set_active(self, pane_id: str) -> None:
        """Mark the label of `pane_id` as the active pane."""
        for label in self.query(".pane-tab").results(Label):
            label.set_class(label.id == f"pane-tab-{pane_id}", "-active")
