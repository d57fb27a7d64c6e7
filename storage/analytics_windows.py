"""Report windows over the analytics rollups, cut into whole UTC days and the hours around them.

Reports ask for a window of whole UTC hours. Rollups exist per hour and per UTC day,
so `split_hours` returns the whole days inside the window, read from the day
rollups, and the leftover hours at either end, read from the hour rollups. Device
activity is stored per day with a mask of the active hours, and per 32-day block with
a mask of the active days. `day_masks` returns the window as `(day, mask)` pairs, and
`activity_pieces` picks the day and block rows that cover them.

Invariants: times are UTC epoch seconds. Hour bounds are multiples of `HOUR`, and
day starts are multiples of `DAY`, so UTC days never have 23 or 25 hours.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "BLOCK",
    "DAY",
    "FULL_DAY_MASK",
    "HOUR",
    "ActivityPiece",
    "DayMask",
    "WindowParts",
    "activity_pieces",
    "day_masks",
    "day_of",
    "split_hours",
]

HOUR = 3600
"""Seconds per hour bucket."""

DAY = 86400
"""Seconds per UTC day bucket."""

BLOCK = 32 * DAY
"""Seconds per block of days: device activity is kept per day (a bit per hour) and per block (a bit per day)."""

FULL_DAY_MASK = (1 << 24) - 1
"""Hour mask with all 24 hours of a day set."""

MIN_BLOCK_DAYS = 8
"""Whole days of one block from which a window reads the block's rows instead of its day rows.

An estimate: a block row costs about as much to read as a day row but stands for
a device's whole block, so it pays off once the window covers a quarter of the block.
"""


class DayMask(NamedTuple):
    """One UTC day start and the mask of its hours in a window (bit n = hour n after midnight)."""

    day: int
    mask: int


class ActivityPiece(NamedTuple):
    """One span of device activity rows to read: a day with an hour mask, or a block with a day mask."""

    span: int
    """`DAY` or `BLOCK`."""
    start: int
    mask: int


class WindowParts(NamedTuple):
    """A window of whole hours as the whole days inside it and the hour ranges outside them."""

    days: tuple[int, int] | None
    """`[first_day, end_day)` day starts, or None when the window contains no whole day."""
    hours: tuple[tuple[int, int], ...]
    """`[start_hour, end_hour)` ranges not covered by `days`, at most two."""


def day_of(ts: float) -> int:
    """Return the start of the UTC day that contains `ts`."""
    return int(ts // DAY) * DAY


def split_hours(start_hour: int, end_hour: int) -> WindowParts:
    """Split `[start_hour, end_hour)` into whole UTC days and the hours before and after them."""
    if end_hour <= start_hour:
        return WindowParts(None, ())
    first_day = -(-start_hour // DAY) * DAY
    end_day = end_hour // DAY * DAY
    if first_day >= end_day:
        return WindowParts(None, ((start_hour, end_hour),))
    hours = tuple(span for span in ((start_hour, first_day), (end_day, end_hour)) if span[0] < span[1])
    return WindowParts((first_day, end_day), hours)


def day_masks(start_hour: int, end_hour: int) -> list[DayMask]:
    """Return the UTC days that `[start_hour, end_hour)` touches, each with the mask of its hours in it."""
    masks: list[DayMask] = []
    day = day_of(start_hour)
    while day < end_hour:
        first = max(start_hour, day) - day
        last = min(end_hour, day + DAY) - day
        mask = ((1 << (last // HOUR)) - 1) & ~((1 << (first // HOUR)) - 1)
        masks.append(DayMask(day, mask))
        day += DAY
    return masks


def activity_pieces(masks: list[DayMask]) -> list[ActivityPiece]:
    """Cover day masks with block rows where a block has at least `MIN_BLOCK_DAYS` whole days, and day rows elsewhere."""
    pieces = [ActivityPiece(DAY, day, mask) for day, mask in masks if mask != FULL_DAY_MASK]
    whole: dict[int, list[int]] = {}
    for day, mask in masks:
        if mask == FULL_DAY_MASK:
            whole.setdefault(day // BLOCK * BLOCK, []).append(day)
    for block, days in sorted(whole.items()):
        if len(days) < MIN_BLOCK_DAYS:
            pieces += [ActivityPiece(DAY, day, FULL_DAY_MASK) for day in days]
            continue
        day_bits = 0
        for day in days:
            day_bits |= 1 << ((day - block) // DAY)
        pieces.append(ActivityPiece(BLOCK, block, day_bits))
    return pieces
