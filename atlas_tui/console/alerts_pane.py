"""The Alerts pane: the alerts table with a severity filter, rule health and channel health.

The main screen passes each alerts read to `show_alerts`; the pane turns it into
display models (`console.alert_presentation`) for its widgets. The pane never calls
the source: `a` opens `AckPrompt` and then posts `AlertCommand`, `u` posts
`AlertCommand` at once, and Enter posts `DetailRequested`. The main screen runs
those through the data loop and the next alerts read shows their effect.
"""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from atlas_tui.console.ack_prompt import AckPrompt
from atlas_tui.console.alert_models import AlertRow, AlertsSnapshot
from atlas_tui.console.alert_presentation import (
    SeverityFilter,
    alert_columns,
    alert_row_views,
    channel_columns,
    channel_row_views,
    engine_lines,
    next_filter,
)
from atlas_tui.console.pane import ConsolePane
from atlas_tui.console.widgets.alerts_table import AlertsTable
from atlas_tui.console.widgets.channel_table import ChannelTable
from atlas_tui.console.widgets.rule_status import RuleStatus
from atlas_tui.console.widgets.severity_bar import SeverityBar

__all__ = ["AlertsPane"]

_SCROLLBAR = 2
"""Cells kept free for a table's vertical scroll bar, so columns never jump when it appears."""


class AlertsPane(ConsolePane):
    """Severity filter line, alerts table, rule status lines and the channel table."""

    BINDINGS = [
        Binding("a", "acknowledge", "Ack", tooltip="Acknowledge the selected alert with a note"),
        Binding("u", "unacknowledge", "Unack", tooltip="Unacknowledge the selected alert"),
        Binding("enter", "details", "Details", show=False, tooltip="Show the selected alert's details"),
        Binding("f", "next_filter", "Filter", tooltip="Next severity filter: all, crit … info"),
        Binding("r", "refresh", "Refresh", show=False, tooltip="Read the store again now"),
    ]

    DEFAULT_CSS = """
    AlertsPane AlertsTable {
        height: 1fr;
        min-height: 4;
    }
    AlertsPane ChannelTable {
        margin-top: 1;
    }
    """

    severity_filter: reactive[SeverityFilter] = reactive("all", init=False)
    """Severities shown in the table; `f` cycles through them."""

    class AlertCommand(Message):
        """Asks for an acknowledgement or its removal on one alert."""

        def __init__(self, action: Literal["acknowledge", "unacknowledge"], alert_id: str, note: str = "") -> None:
            super().__init__()
            self.action: Literal["acknowledge", "unacknowledge"] = action
            """What to do."""
            self.alert_id = alert_id
            """The alert to change."""
            self.note = note
            """The operator's note for an acknowledgement."""

    class DetailRequested(Message):
        """Asks for the detail screen of one alert."""

        def __init__(self, alert_id: str) -> None:
            super().__init__()
            self.alert_id = alert_id
            """The alert to show."""

    def __init__(self, *, id: str | None = None) -> None:
        """Create the pane; it shows nothing until the first alerts read."""
        super().__init__(id=id)
        self._alerts: AlertsSnapshot | None = None
        self._rows: dict[str, AlertRow] = {}

    def compose(self) -> ComposeResult:
        """Create the filter line, the alerts table, the rule lines and the channel table."""
        yield SeverityBar()
        yield AlertsTable(id="alerts-table")
        yield RuleStatus(id="rule-status")
        yield ChannelTable(id="channel-table")

    def on_mount(self) -> None:
        """Mark the initial filter."""
        for bar in self.query(SeverityBar):
            bar.set_active(self.severity_filter)

    def watch_severity_filter(self, severity_filter: SeverityFilter) -> None:
        """Mark the new filter and show only its rows."""
        for bar in self.query(SeverityBar):
            bar.set_active(severity_filter)
        self._render_alerts()

    def on_resize(self, event: Resize) -> None:
        """Lay the tables out again for the new width."""
        self._render_alerts()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Open the details of the row Enter was pressed on."""
        if isinstance(event.data_table, AlertsTable):
            event.stop()
            self.action_details()

    def action_acknowledge(self) -> None:
        """Ask for a note, then acknowledge the selected alert."""
        row = self._selected_row()
        if row is None:
            return
        if not row.open_incident:
            self.notify(f"{row.alert_id} is {row.state}; only a firing alert can be acknowledged", severity="warning")
            return
        alert_id = row.alert_id

        def send(note: str | None) -> None:
            if note is not None:
                self.post_message(self.AlertCommand("acknowledge", alert_id, note))

        self.app.push_screen(AckPrompt(alert_id, row.rule_name), send)

    def action_unacknowledge(self) -> None:
        """Remove the acknowledgement of the selected alert."""
        row = self._selected_row()
        if row is None:
            return
        if row.acked_by is None:
            self.notify(f"{row.alert_id} is not acknowledged", severity="warning")
            return
        self.post_message(self.AlertCommand("unacknowledge", row.alert_id))

    def action_details(self) -> None:
        """Open the detail screen of the selected alert."""
        row = self._selected_row()
        if row is not None:
            self.post_message(self.DetailRequested(row.alert_id))

    def action_next_filter(self) -> None:
        """Show the next severity: all, critical, error, warning, info, then all again."""
        self.severity_filter = next_filter(self.severity_filter)

    def action_refresh(self) -> None:
        """Ask for fresh data now."""
        self.post_message(self.RefreshRequested())

    def show_alerts(self, alerts: AlertsSnapshot) -> None:
        """Show a new alerts read."""
        self._alerts = alerts
        self._rows = {row.alert_id: row for row in alerts.rows}
        self._render_alerts()

    def _render_alerts(self) -> None:
        alerts = self._alerts
        if alerts is None:
            return
        width = self.size.width - _SCROLLBAR
        for table in self.query(AlertsTable):
            columns = alert_columns(width)
            table.apply(columns, alert_row_views(alerts, self.severity_filter, columns))
        for status in self.query(RuleStatus):
            status.show_lines(engine_lines(alerts))
        for channels in self.query(ChannelTable):
            columns = channel_columns(width)
            channels.apply(columns, channel_row_views(alerts, columns))
            channels.display = bool(alerts.channels)

    def _selected_row(self) -> AlertRow | None:
        for table in self.query(AlertsTable):
            key = table.selected_key
            if key is not None:
                return self._rows.get(key)
        self.notify("no alert selected", severity="warning")
        return None
