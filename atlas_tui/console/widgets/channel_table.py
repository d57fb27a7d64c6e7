"""The channel health table of the Alerts pane: one row per notification channel.

The pane calls `apply` after each alerts read (at least every 2 s while live) and
after a resize. The table has no cursor and takes no focus: it is read, not
navigated. Rows are keyed by channel name and updated in place.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from atlas_tui.console.alert_presentation import ChannelRowView, Column
from atlas_tui.console.widgets.status_text import plain_cell, status_cell

__all__ = ["ChannelTable"]


class ChannelTable(DataTable[Text]):
    """Channel, state, last success, last error with its class, queue depth, next retry."""

    DEFAULT_CSS = """
    ChannelTable {
        height: auto;
        max-height: 6;
    }
    """

    can_focus = False

    def __init__(self, *, id: str | None = None) -> None:
        """Create an empty table without a cursor."""
        super().__init__(id=id, show_cursor=False, zebra_stripes=False)
        self._columns: tuple[Column, ...] = ()

    def apply(self, columns: tuple[Column, ...], rows: Sequence[ChannelRowView]) -> None:
        """Make the table show `rows` in `columns`."""
        if columns != self._columns:
            self.clear(columns=True)
            self._columns = columns
            for column in columns:
                self.add_column(column.heading, width=column.width, key=column.key)
        shown = {row.key for row in rows}
        for key in [key for key in self.rows if key.value not in shown]:
            self.remove_row(key)
        for row in rows:
            cells = self._cells(row)
            if row.key not in self.rows:
                self.add_row(*cells, key=row.key)
                continue
            for column, cell in zip(self._columns, cells, strict=True):
                old = self.get_cell(row.key, column.key)
                if old.plain != cell.plain or old.style != cell.style:
                    self.update_cell(row.key, column.key, cell)

    def _cells(self, row: ChannelRowView) -> list[Text]:
        return [
            status_cell(self.app, text, row.state)
            if column.key == "state"
            else plain_cell(text, column.justify)
            for column, text in zip(self._columns, row.cells, strict=True)
        ]
