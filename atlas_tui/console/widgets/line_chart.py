"""A plotext line chart that draws a `ChartView` with the app theme's colours.

`ChartPanel` calls `show_view` with a view built by `console.presentation`; this
widget only maps it onto plotext calls. Line colours come from the theme variables
in `LINE_COLOURS`, in legend order, so the heading's legend can use the same ones.
"""

from __future__ import annotations

from textual.color import Color
from textual_plotext import PlotextPlot

from atlas_tui.console.presentation import ChartView

__all__ = ["LINE_COLOURS", "LineChart"]

LINE_COLOURS = ("primary", "warning", "success", "error")
"""Theme variables used for the first, second, third and fourth line."""


class LineChart(PlotextPlot):
    """A line chart with fixed axes and labelled ticks from its view."""

    DEFAULT_CSS = """
    LineChart {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        """Create an empty chart."""
        super().__init__(id=id, classes=classes)
        self._view: ChartView | None = None

    @property
    def view(self) -> ChartView | None:
        """The view drawn last; None before the first data arrives."""
        return self._view

    def show_view(self, view: ChartView) -> None:
        """Replace the plotted data with `view` and repaint."""
        self._view = view
        self._draw(view)
        self.refresh()

    def _draw(self, view: ChartView) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.frame(False)
        for index, line in enumerate(view.lines):
            if line.xs:
                plt.plot(list(line.xs), list(line.ys), marker="hd", color=self._colour(index))
        plt.xlim(*view.x_range)
        plt.ylim(*view.y_range)
        plt.xticks([tick for tick, _ in view.x_ticks], [label for _, label in view.x_ticks])
        plt.yticks([tick for tick, _ in view.y_ticks], [label for _, label in view.y_ticks])

    def _colour(self, index: int) -> tuple[int, int, int]:
        variable = LINE_COLOURS[index % len(LINE_COLOURS)]
        return Color.parse(self.app.theme_variables[variable]).rgb
