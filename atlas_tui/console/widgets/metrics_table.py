"""The current-values table: one row per series, updated in place by row key.

The Metrics pane calls `apply_rows` after each snapshot. Existing rows get only the
cells that changed, through `update_cell` with `update_width` so a longer value
widens its column. New series are appended and vanished series removed. Rows are never
cleared and re-added, so the cursor and scroll position survive a refresh.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from atlas_tui.console.presentation import TABLE_COLUMNS, TableRowView

__all__ = ["MetricsTable"]

class MetricsTable(DataTable[Text]):
    """A row-cursor `DataTable` fed with `TableRowView`s."""

    DEFAULT_CSS = """
    MetricsTable {
        height: 1fr;
    }
    """

    def on_mount(self) -> None:
        """Add the columns."""
        self.cursor_type = "row"
        for key, heading in TABLE_COLUMNS:
            self.add_column(heading, key=key)

    def apply_rows(self, rows: Sequence[TableRowView]) -> None:
        """Make the table show `rows`, changing only what differs from the last call."""
        shown_keys = {row.key for row in rows}
        for key in [key for key in self.rows if key.value not in shown_keys]:
            self.remove_row(key)
        for row in rows:
            if row.key in self.rows:
                self._update_row(row)
            else:
                self.add_row(*(_cell(row, key) for key, _ in TABLE_COLUMNS), key=row.key)

    def _update_row(self, row: TableRowView) -> None:
        for column_key, _ in TABLE_COLUMNS:
            cell = _cell(row, column_key)
            if str(self.get_cell(row.key, column_key)) != str(cell):
                self.update_cell(row.key, column_key, cell, update_width=True)


def _cell(row: TableRowView, column_key: str) -> Text:
    return Text(row.cell(column_key), no_wrap=True, overflow="ellipsis")
