"""The Alerts pane's rule-evaluation lines: last evaluation, missed evaluations, rules in error.

The pane calls `show_lines` with `console.alert_presentation.engine_lines` after
each alerts read. Each line is cut with an ellipsis at the pane's width, so a long
error message cannot wrap.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.widgets import Static

from atlas_tui.console.alert_presentation import Status
from atlas_tui.console.widgets.status_text import status_style

__all__ = ["RuleStatus"]


class RuleStatus(Static):
    """One coloured line per entry."""

    DEFAULT_CSS = """
    RuleStatus {
        height: auto;
        width: 1fr;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def show_lines(self, lines: Sequence[tuple[str, Status]]) -> None:
        """Show `lines`, each `(text, status)`."""
        parts: list[str | tuple[str, str]] = []
        for index, (text, status) in enumerate(lines):
            if index:
                parts.append("\n")
            parts.append((text, status_style(status)))
        self.update(Content.assemble(*parts))
