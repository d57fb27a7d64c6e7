"""A plotext line chart of daily active devices for the Analytics pane.

The pane calls `show_view` with a `DauChartView` from `console.analytics_presentation`;
this widget only maps it onto plotext calls. The line colour is the theme's `$primary`.
A line rather than bars, because 30 bars merge into one block at 80 columns.
"""

from __future__ import annotations

from textual.color import Color
from textual_plotext import PlotextPlot

from atlas_tui.console.analytics_presentation import DauChartView

__all__ = ["DauChart"]


class DauChart(PlotextPlot):
    """Active devices per day as one line, oldest day on the left."""

    DEFAULT_CSS = """
    DauChart {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        """Create an empty chart."""
        super().__init__(id=id)
        self._view: DauChartView | None = None

    @property
    def view(self) -> DauChartView | None:
        """The view drawn last; None before the first data arrives."""
        return self._view

    def show_view(self, view: DauChartView) -> None:
        """Replace the plotted data with `view` and repaint."""
        self._view = view
        plt = self.plt
        plt.clear_figure()
        plt.frame(False)
        if view.xs:
            colour = Color.parse(self.app.theme_variables["primary"]).rgb
            plt.plot(list(view.xs), list(view.ys), marker="hd", color=colour)
            plt.xlim(0, max(max(view.xs), 1.0))
        plt.ylim(*view.y_range)
        plt.xticks([tick for tick, _ in view.x_ticks], [label for _, label in view.x_ticks])
        plt.yticks([tick for tick, _ in view.y_ticks], [label for _, label in view.y_ticks])
        self.refresh()
