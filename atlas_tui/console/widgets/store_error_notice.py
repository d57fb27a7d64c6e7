"""The notice shown in place of the panes when the store could not be opened or read.

The main screen shows it after a start or refresh error while no snapshot has
reached the screen yet, so a console that never got data shows why instead of
showing empty charts. The header keeps the error on show as well. The next
snapshot hides the notice and brings the panes back.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from atlas_tui.console.formatting import printable

__all__ = ["STORE_ADVICE", "StoreErrorNotice", "store_error_text"]

STORE_ADVICE = (
    "Check that the data directory (--data-dir or ATLAS_DATA_DIR) is a directory this user "
    "can write, and that the atlas.db in it is an ATLAS store. A damaged atlas.db can be "
    "moved aside (keep it for recovery) so that a new store is created. "
    "`atlas daemon --data-dir DIR` reports the same problem."
)
"""Advice for a store that cannot be opened or read."""


class StoreErrorNotice(Static):
    """A centred block: what failed, the error text, what to do and how to retry."""

    DEFAULT_CSS = """
    StoreErrorNotice {
        width: 1fr;
        height: 1fr;
        padding: 1 2;
        content-align: center middle;
        text-align: center;
    }
    """

    def show_error(self, error: str, retry_hint: str) -> None:
        """Show `error` with the advice and `retry_hint` (`r tries again, q quits`)."""
        self.update(store_error_text(error, retry_hint))


def store_error_text(error: str, retry_hint: str) -> Content:
    """Build the notice text: a bold heading, the error in the error colour, the advice, the hint."""
    return Content.assemble(
        ("The console cannot read the store.", "bold"),
        "\n\n",
        (printable(error), "$error"),
        "\n\n",
        STORE_ADVICE,
        "\n\n",
        (retry_hint, "$text-muted"),
    )
