"""The base class of console panes and the message a pane sends to ask for data.

Each pane (Metrics, Alerts, Analytics and Backups) is one module with
one `ConsolePane` subclass, registered in `console.panes`. The main screen hands
every pane each new snapshot through `show_snapshot`, each alerts read through
`show_alerts` and each analytics read through `show_analytics`, on the UI thread. A pane that needs fresh data posts
`RefreshRequested` instead of calling the source itself. The Backups pane is the
exception: its reads and jobs can take minutes, so it runs them on `AtlasApp.backups`
in thread workers of its own instead of the data loop.
"""

from __future__ import annotations

from textual.containers import Vertical
from textual.message import Message

from atlas_tui.console.alert_models import AlertsSnapshot
from atlas_tui.console.analytics_models import AnalyticsRead
from atlas_tui.console.source import ConsoleSnapshot

__all__ = ["ConsolePane"]


class ConsolePane(Vertical):
    """A pane of the main screen's content switcher."""

    class RefreshRequested(Message):
        """Asks the data loop for a refresh now, optionally with a new chart window."""

        def __init__(self, window_seconds: float | None = None) -> None:
            super().__init__()
            self.window_seconds = window_seconds
            """New chart window in seconds, or None to keep the current one."""

    def show_snapshot(self, snapshot: ConsoleSnapshot) -> None:
        """Show the data of a new snapshot; the base pane ignores it."""

    def show_alerts(self, alerts: AlertsSnapshot) -> None:
        """Show the data of a new alerts read; the base pane ignores it."""

    def show_analytics(self, read: AnalyticsRead) -> None:
        """Show the data of a new analytics read; the base pane ignores it."""

    def focus_content(self) -> None:
        """Give keyboard focus to the pane's main widget, or to the pane itself."""
        for widget in self.query("*"):
            if widget.focusable:
                widget.focus()
                return
