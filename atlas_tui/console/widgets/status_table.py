"""A table whose rows carry a status colour: the Nodes and Probes tables of the Metrics pane.

The nodes section (`console.nodes_panel`) calls `apply_rows` with the views of
`console.node_presentation`. Rows are updated in place by key and vanished rows
removed, so the cursor survives a refresh. A table without rows cannot take focus. The status of a row colours its first
and status columns with a theme variable: `ok` uses `$success`, `warning` uses
`$warning`, `critical` uses `$error`, `stale` uses `$foreground-muted`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.widgets import DataTable

from atlas_tui.console.node_presentation import RowStatus, StatusRowView

__all__ = ["STATUS_COLOURS", "StatusTable"]

STATUS_COLOURS: dict[RowStatus, str] = {
    "ok": "success",
    "warning": "warning",
    "critical": "error",
    "stale": "foreground-muted",
}
"""Theme variable of each row status."""


class StatusTable(DataTable[Text]):
    """A row-cursor `DataTable` fed with `StatusRowView`s."""

    DEFAULT_CSS = """
    StatusTable {
        height: 1fr;
    }
    """

    def __init__(
        self, columns: Sequence[tuple[str, str]], *, status_column: str, id: str | None = None
    ) -> None:
        """Create the table.

        Args:
            columns: `(key, heading)` per column, in order.
            status_column: Key of the column coloured by the row status, besides the first.
            id: DOM id of the table.
        """
        # The cursor row's highlight hides the status colours, so it shows only while
        # the table has focus.
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_cursor=False)
        # Focusable only with rows: a hidden, empty table must not take the pane's
        # initial focus from the current-values table.
        self.can_focus = False
        self._columns = tuple(columns)
        self._coloured = {columns[0][0], status_column}

    def on_mount(self) -> None:
        """Add the columns."""
        for key, heading in self._columns:
            self.add_column(heading, key=key)

    def on_focus(self) -> None:
        """Show the cursor while the table has focus."""
        self.show_cursor = True

    def on_blur(self) -> None:
        """Hide the cursor, so the status colours show."""
        self.show_cursor = False

    def apply_rows(self, rows: Sequence[StatusRowView]) -> None:
        """Make the table show `rows`, changing only cells that differ; an empty table cannot take focus."""
        self.can_focus = bool(rows)
        keys = {row.key for row in rows}
        for key in [key for key in self.rows if key.value not in keys]:
            self.remove_row(key)
        for row in rows:
            cells = [self._cell(row, column) for column, _ in self._columns]
            if row.key not in self.rows:
                self.add_row(*cells, key=row.key)
                continue
            for (column, _), cell in zip(self._columns, cells):
                current = self.get_cell(row.key, column)
                if current.plain != cell.plain or current.style != cell.style:
                    self.update_cell(row.key, column, cell, update_width=True)

    def _cell(self, row: StatusRowView, column: str) -> Text:
        style: Style | str = ""
        if column in self._coloured:
            variable = self.app.theme_variables.get(STATUS_COLOURS[row.status])
            if variable is not None:
                # Theme colours may carry alpha (`#E0E0E099`), which Rich styles do not accept.
                colour = Color.parse(variable).rich_color
                style = Style(color=colour, bold=column != self._columns[0][0])
        return Text(row.cell(column), style=style, no_wrap=True, overflow="ellipsis")
