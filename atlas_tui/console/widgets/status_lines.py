"""A titled block of text lines, each coloured by its status: the Analytics pane's sections.

The pane calls `show_section` with a `SectionView` from `console.analytics_presentation`.
Lines never wrap; a line wider than the block is cut with `…`. Status colours are
theme variables: `ok` uses `$success`, `warning` uses `$warning`, `critical` uses
`$error`, `stale` uses `$text-muted`, and `plain` the normal text colour.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from atlas_tui.console.analytics_presentation import LineStatus, SectionView

__all__ = ["LINE_STYLES", "StatusLines"]

LINE_STYLES: dict[LineStatus, str] = {
    "ok": "$success",
    "warning": "$warning",
    "critical": "$error",
    "stale": "$text-muted",
    "plain": "",
}
"""Content style of each line status."""


class StatusLines(Static):
    """A bold title and status-coloured lines, cut with an ellipsis at the block's width."""

    DEFAULT_CSS = """
    StatusLines {
        width: 1fr;
        height: auto;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        """Create a block that shows only `title` until data arrives."""
        super().__init__(Content.styled(title, "bold"), id=id)
        self._section: SectionView | None = None

    @property
    def section(self) -> SectionView | None:
        """The section shown last; None before the first data arrives."""
        return self._section

    def show_section(self, section: SectionView) -> None:
        """Show `section`'s title and lines."""
        self._section = section
        parts: list[Content] = [Content.styled(section.title, "bold")]
        parts.extend(Content.styled(line.text, LINE_STYLES[line.status]) for line in section.lines)
        self.update(Content("\n").join(parts))
