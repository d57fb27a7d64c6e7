"""The Alerts pane's line that lists the severity filters, marks the active one and shows the keys.

Labels only; the pane's `f` binding changes the filter and calls `set_active`.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from atlas_tui.console.alert_presentation import SEVERITY_FILTERS, SeverityFilter, severity_label

__all__ = ["SeverityBar"]


class SeverityBar(Horizontal):
    """`Severity all crit err warn info` with the active filter highlighted."""

    DEFAULT_CSS = """
    SeverityBar {
        height: 1;
        width: 1fr;
    }
    SeverityBar Label {
        width: auto;
        padding: 0 1;
        text-wrap: nowrap;
    }
    SeverityBar #severity-hint {
        width: 1fr;
        text-overflow: ellipsis;
    }
    """

    def compose(self) -> ComposeResult:
        """Create the caption, one label per filter and the key hint."""
        yield Label("Severity", id="severity-caption")
        for name in SEVERITY_FILTERS:
            text = "all" if name == "all" else severity_label(name)
            yield Label(text, id=f"severity-{name}", classes="severity-choice")
        yield Label("enter details · a ack · u unack", id="severity-hint")

    def set_active(self, severity_filter: SeverityFilter) -> None:
        """Highlight `severity_filter`."""
        for label in self.query(".severity-choice").results(Label):
            label.set_class(label.id == f"severity-{severity_filter}", "-active")
