"""The Analytics pane's line that lists the report ranges and marks the selected one.

Labels only; the pane's `t` binding changes the range and calls `set_active`.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from atlas_tui.console.analytics_models import ANALYTICS_RANGES, AnalyticsRange

__all__ = ["RangeBar"]


class RangeBar(Horizontal):
    """`Range 24h 7d 30d` with the selected range highlighted, then a key hint."""

    DEFAULT_CSS = """
    RangeBar {
        height: 1;
        width: 1fr;
    }
    RangeBar Label {
        width: auto;
        padding: 0 1;
        text-wrap: nowrap;
    }
    RangeBar #range-hint {
        width: 1fr;
        text-overflow: ellipsis;
    }
    """

    def compose(self) -> ComposeResult:
        """Create the caption, one label per range and the key hint."""
        yield Label("Range", id="range-caption")
        for report_range in ANALYTICS_RANGES:
            yield Label(report_range.label, id=f"range-{report_range.label}", classes="range-choice")
        yield Label("t next range · r refresh", id="range-hint")

    def set_active(self, report_range: AnalyticsRange) -> None:
        """Highlight `report_range`."""
        for label in self.query(".range-choice").results(Label):
            label.set_class(label.id == f"range-{report_range.label}", "-active")
