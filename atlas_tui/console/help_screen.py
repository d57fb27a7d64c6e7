"""The `?` help overlay: a modal list of every key binding and what it does.

The app builds the entries from its own bindings and those of the registered panes,
so the list cannot drift from the keys that work. Escape or `?` closes it. A modal
screen hides the app's bindings, so this screen binds `q` (quit) and the pane number
keys (close the help and show that pane) itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from atlas_tui.console.modal import SizeGuardedModal
from atlas_tui.console.panes import PANES

__all__ = ["HelpScreen"]


class HelpScreen(SizeGuardedModal[None]):
    """A centred box with a two-column key table."""

    BINDINGS = [
        Binding("escape", "close", "Close help"),
        Binding("question_mark", "close", "Close help", show=False),
        Binding("q", "app.quit", "Quit", show=False),
        *(Binding(spec.key, f"app.show_pane('{spec.pane_id}')", spec.title, show=False) for spec in PANES),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > #help-box {
        width: 64;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen #help-title {
        width: 1fr;
        text-style: bold;
    }
    HelpScreen DataTable {
        height: auto;
        max-height: 100%;
    }
    """

    def __init__(self, entries: Sequence[tuple[str, str]]) -> None:
        """Create the overlay.

        Args:
            entries: `(key display, description)` pairs in display order.
        """
        super().__init__()
        self._entries = tuple(entries)

    def compose(self) -> ComposeResult:
        """Create the title and the key table."""
        with Vertical(id="help-box"):
            yield Label("Keys (escape closes this help)", id="help-title")
            yield DataTable(show_cursor=False, zebra_stripes=True, id="help-keys")

    def on_mount(self) -> None:
        """Fill the key table."""
        for table in self.query("#help-keys").results(DataTable):
            table.add_column("Key", key="key")
            table.add_column("Action", key="action")
            for key, description in self._entries:
                table.add_row(Text(key, style="bold"), Text(description, no_wrap=True, overflow="ellipsis"))

    def action_close(self) -> None:
        """Close the overlay."""
        self.dismiss(None)
