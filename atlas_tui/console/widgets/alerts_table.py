"""The alerts table: one row per alert, updated in place by alert id.

The Alerts pane calls `apply` after each alerts read and after a resize. Rows are
keyed by alert id: changed cells are updated, new alerts added and vanished ones
removed, so the cursor stays on the selected alert across refreshes. Two cases
rebuild more: a new column layout (the terminal width changed) re-creates the
columns, and a new row order (an alert changed state and moved) re-adds the rows.
Both keep the cursor on the same alert.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from atlas_tui.console.alert_presentation import AlertRowView, Column
from atlas_tui.console.widgets.status_text import plain_cell, status_cell

__all__ = ["AlertsTable"]


class AlertsTable(DataTable[Text]):
    """A row-cursor `DataTable` fed with `AlertRowView`s."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Details", tooltip="Show the selected alert's details"),
    ]

    DEFAULT_CSS = """
    AlertsTable {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        """Create an empty table with a row cursor."""
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._columns: tuple[Column, ...] = ()
        self._order: list[str] = []

    @property
    def selected_key(self) -> str | None:
        """Alert id of the row under the cursor; None for an empty table."""
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def apply(self, columns: tuple[Column, ...], rows: Sequence[AlertRowView]) -> None:
        """Make the table show `rows` in `columns`, changing only what differs."""
        selected = self.selected_key
        keys = [row.key for row in rows]
        if columns != self._columns:
            self._set_columns(columns)
            self._add_rows(rows)
        elif _order_after_update(self._order, keys) == keys:
            self._update_in_place(rows)
        else:
            self.clear()
            self._add_rows(rows)
        self._order = keys
        self._restore_cursor(selected)

    def _set_columns(self, columns: tuple[Column, ...]) -> None:
        self.clear(columns=True)
        self._columns = columns
        for column in columns:
            self.add_column(column.heading, width=column.width, key=column.key)

    def _add_rows(self, rows: Sequence[AlertRowView]) -> None:
        for row in rows:
            self.add_row(*self._cells(row), key=row.key)

    def _update_in_place(self, rows: Sequence[AlertRowView]) -> None:
        shown = {row.key for row in rows}
        for key in [key for key in self.rows if key.value not in shown]:
            self.remove_row(key)
        for row in rows:
            if row.key not in self.rows:
                self.add_row(*self._cells(row), key=row.key)
                continue
            for column, cell in zip(self._columns, self._cells(row), strict=True):
                old = self.get_cell(row.key, column.key)
                if old.plain != cell.plain or old.style != cell.style:
                    self.update_cell(row.key, column.key, cell)

    def _cells(self, row: AlertRowView) -> list[Text]:
        cells = []
        for column, text in zip(self._columns, row.cells, strict=True):
            if column.key == "severity":
                cells.append(status_cell(self.app, text, row.severity))
            elif column.key == "state":
                cells.append(status_cell(self.app, text, row.state))
            else:
                cells.append(plain_cell(text, column.justify))
        return cells

    def _restore_cursor(self, key: str | None) -> None:
        if key is None or key not in self.rows:
            return
        index = self.get_row_index(key)
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False)


def _order_after_update(shown: list[str], keys: list[str]) -> list[str]:
    """Return the row order an in-place update gives: kept rows in place, new rows appended."""
    wanted = set(keys)
    kept = [key for key in shown if key in wanted]
    known = set(shown)
    return kept + [key for key in keys if key not in known]
