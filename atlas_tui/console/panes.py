"""The registry of console panes: which key shows which pane class.

Adding a pane is one module with a `ConsolePane` subclass plus one `PaneSpec` line
here. The app derives its number-key bindings, the pane bar and the help screen
from `PANES`.
"""

from __future__ import annotations

from dataclasses import dataclass

from atlas_tui.console.alerts_pane import AlertsPane
from atlas_tui.console.analytics_pane import AnalyticsPane
from atlas_tui.console.backups_pane import BackupsPane
from atlas_tui.console.metrics_pane import MetricsPane
from atlas_tui.console.pane import ConsolePane

__all__ = ["PANES", "PaneSpec"]


@dataclass(frozen=True, slots=True)
class PaneSpec:
    """One pane of the main screen."""

    key: str
    """Key that shows the pane (`1` to `4`)."""
    pane_id: str
    """DOM id of the pane, also used in the `show_pane` action."""
    title: str
    """Name in the pane bar, the footer and the help screen."""
    pane_class: type[ConsolePane]
    """The pane's widget class, created with `pane_class(id=pane_id)`."""


PANES: tuple[PaneSpec, ...] = (
    PaneSpec("1", "metrics", "Metrics", MetricsPane),
    PaneSpec("2", "alerts", "Alerts", AlertsPane),
    PaneSpec("3", "analytics", "Analytics", AnalyticsPane),
    PaneSpec("4", "backups", "Backups", BackupsPane),
)
"""Panes in key order; the first is shown at start."""
