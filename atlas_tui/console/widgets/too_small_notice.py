"""The notice shown instead of the panes when the terminal is below the minimum size.

The main screen shows it and hides everything else while the terminal is smaller
than `MIN_SIZE`, and swaps back on the next resize that is large enough.
"""

from __future__ import annotations

from textual.widgets import Static

__all__ = ["MIN_SIZE", "TooSmallNotice", "too_small_message"]

MIN_SIZE = (80, 24)
"""Smallest usable terminal as (columns, rows)."""


class TooSmallNotice(Static):
    """A centred one-line message naming the required and the current size."""

    DEFAULT_CSS = """
    TooSmallNotice {
        width: 1fr;
        height: 1fr;
        content-align: center middle;
        text-align: center;
    }
    """

    def show_size(self, width: int, height: int) -> None:
        """Update the message for a terminal of `width` x `height` cells."""
        self.update(too_small_message(width, height))


def too_small_message(width: int, height: int) -> str:
    """Return the notice text for a terminal of `width` x `height` cells."""
    need_width, need_height = MIN_SIZE
    return f"terminal too small (need {need_width}x{need_height}, have {width}x{height})"
