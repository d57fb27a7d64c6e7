"""The chart windows the Metrics pane offers (5 min, 1 h, 24 h, 7 d) and their axis ticks.

The pane keeps the selected window; the data worker passes its width to
`ConsoleSource.snapshot`. The store serves long windows from rollups, so a wide
window costs no more points than a narrow one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WINDOWS", "TimeWindow", "step_window"]


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """One selectable chart window."""

    label: str
    """Short name shown in the window bar, for example `1h`."""
    seconds: float
    """Width of the window in seconds."""
    tick_offsets: tuple[float, ...]
    """Seconds before `now` at which the x axis gets a labelled tick; 0 is `now`."""


WINDOWS: tuple[TimeWindow, ...] = (
    TimeWindow("5m", 300.0, (240.0, 120.0, 0.0)),
    TimeWindow("1h", 3600.0, (2700.0, 1800.0, 900.0, 0.0)),
    TimeWindow("24h", 86400.0, (64800.0, 43200.0, 21600.0, 0.0)),
    TimeWindow("7d", 604800.0, (518400.0, 345600.0, 172800.0, 0.0)),
)
"""All windows in the order `w` cycles through them; the first is the default."""


def step_window(current: TimeWindow, steps: int) -> TimeWindow:
    """Return the window `steps` places after `current` in `WINDOWS`, wrapping around."""
    index = WINDOWS.index(current)
    return WINDOWS[(index + steps) % len(WINDOWS)]
