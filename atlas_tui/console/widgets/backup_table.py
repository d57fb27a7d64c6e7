"""A table of the Backups pane: the sets table or the snapshot table, updated in place by row key.

The pane calls `apply` after each repository read and after a resize, with the
columns and rows of `console.backup_presentation`. Unchanged cells are left alone
so the cursor and the scroll position survive a refresh. A new column layout or a
new row order (a new snapshot on top) rebuilds the rows and puts the cursor back on
the row it was on. The status cell is coloured through `status_text.status_cell`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from atlas_tui.console.alert_presentation import Column
from atlas_tui.console.backup_presentation import BackupRowView
from atlas_tui.console.widgets.status_text import plain_cell, status_cell

__all__ = ["BackupTable"]


class BackupTable(DataTable[Text]):
    """A `DataTable` fed with `BackupRowView`s; with `navigable` False it has no cursor and takes no focus."""

    def __init__(self, *, navigable: bool, id: str | None = None) -> None:
        """Create an empty table.

        Args:
            navigable: True gives a row cursor that selects a row for the pane's keys.
            id: DOM id of the table.
        """
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_cursor=navigable)
        self.can_focus = navigable
        self._columns: tuple[Column, ...] = ()
        self._order: list[str] = []

    @property
    def selected_key(self) -> str | None:
        """Row key under the cursor; None for an empty table."""
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def apply(self, columns: Sequence[Column], rows: Sequence[BackupRowView]) -> None:
        """Make the table show `rows` in `columns`, changing only what differs."""
        selected = self.selected_key
        keys = [row.key for row in rows]
        if tuple(columns) != self._columns:
            self.clear(columns=True)
            self._columns = tuple(columns)
            for column in self._columns:
                self.add_column(column.heading, width=column.width, key=column.key)
            self._add_rows(rows)
        elif keys == self._order:
            self._update_cells(rows)
        else:
            self.clear()
            self._add_rows(rows)
        self._order = keys
        if selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def _add_rows(self, rows: Sequence[BackupRowView]) -> None:
        for row in rows:
            self.add_row(*self._cells(row), key=row.key)

    def _update_cells(self, rows: Sequence[BackupRowView]) -> None:
        for row in rows:
            for column, cell in zip(self._columns, self._cells(row), strict=True):
                old = self.get_cell(row.key, column.key)
                if old.plain != cell.plain or old.style != cell.style:
                    self.update_cell(row.key, column.key, cell)

    def _cells(self, row: BackupRowView) -> list[Text]:
        return [
            status_cell(self.app, text, row.status) if column.key == "status" else plain_cell(text, column.justify)
            for column, text in zip(self._columns, row.cells, strict=True)
        ]
