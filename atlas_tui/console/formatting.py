"""Text for numbers, units, ages and over-long names on the console.

Pure functions that the presentation layer calls before anything reaches a widget;
widgets print the strings as they are. Widths are terminal cells (`rich.cells`), so
CJK characters and emoji count double and truncation never splits one.
"""

from __future__ import annotations

import time
import unicodedata
from typing import Literal

from rich.cells import cell_len

from atlas_tui.console.source import Unit

__all__ = [
    "ELLIPSIS",
    "format_age",
    "format_axis_value",
    "format_bytes",
    "format_duration_short",
    "format_value",
    "format_utc",
    "pad_cells",
    "printable",
    "truncate_cells",
]

ELLIPSIS = "…"
"""The one-cell mark that replaces the cut part of a truncated text."""

_IEC_PREFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi")
_AXIS_PREFIXES = ("", "K", "M", "G", "T", "P")
_MISSING = "—"


def format_value(value: float, unit: Unit) -> str:
    """Format a reading for the current-values table (`45.2 %`, `1.2 MiB/s`)."""
    if unit == "percent":
        return f"{value:.1f} %"
    if unit == "bytes_per_second":
        return f"{format_bytes(value)}/s"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "seconds":
        return format_duration_short(value)
    if unit == "load":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def format_bytes(value: float) -> str:
    """Format a byte count with binary prefixes: `512 B`, `1.5 KiB`, `3.2 GiB`."""
    scaled = float(value)
    for prefix in _IEC_PREFIXES:
        if abs(scaled) < 1024 or prefix == _IEC_PREFIXES[-1]:
            break
        scaled /= 1024
    if prefix == "":
        return f"{scaled:.0f} B"
    return f"{scaled:.1f} {prefix}B"


def format_axis_value(value: float, unit: Unit) -> str:
    """Format a y-axis tick in at most 5 cells: `100`, `2.5`, `1.5M`, `512K`."""
    base = 1024.0 if unit in ("bytes", "bytes_per_second") else 1000.0
    scaled = float(value)
    for prefix in _AXIS_PREFIXES:
        if abs(scaled) < base or prefix == _AXIS_PREFIXES[-1]:
            break
        scaled /= base
    text = f"{scaled:.1f}".rstrip("0").rstrip(".")
    return f"{text}{prefix}"


def format_duration_short(seconds: float) -> str:
    """Format seconds as at most two units: `42s`, `5m 3s`, `2h 10m`, `3d 4h`."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def format_age(seconds: float | None) -> str:
    """Format how long ago something happened (`3s ago`); `—` when unknown."""
    if seconds is None:
        return _MISSING
    if seconds < 0:
        # The writer's clock is ahead of ours, which a negative age would hide.
        return "in the future"
    return f"{format_duration_short(seconds)} ago"


def format_utc(ts: float) -> str:
    """Format UTC epoch seconds as `2025-06-15 15:06:40` (UTC, to the second)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def pad_cells(text: str, width: int) -> str:
    """Cut `text` to `width` cells with `…` and pad it with spaces to exactly `width` cells."""
    cut = truncate_cells(text, width)
    return cut + " " * max(0, width - cell_len(cut))


def printable(text: str) -> str:
    """Replace control and format characters so a label cannot move the cursor or wrap."""
    return "".join(
        "\N{REPLACEMENT CHARACTER}" if unicodedata.category(char)[0] == "C" else char
        for char in text
    )


def truncate_cells(
    text: str, width: int, *, keep: Literal["start", "middle"] = "start"
) -> str:
    """Cut `text` to at most `width` terminal cells, marking the cut with `…`.

    Args:
        text: The text; control characters should already be replaced.
        width: Maximum cells; 0 or less gives an empty string.
        keep: `start` keeps the beginning (names), `middle` keeps both ends, which
            suits paths whose last component matters most.

    Returns:
        `text` unchanged when it fits, else a shortened text ending or containing `…`.
    """
    if cell_len(text) <= width:
        return text
    if width <= 0:
        return ""
    if width == 1:
        return ELLIPSIS
    if keep == "start":
        return _take_cells(text, width - 1) + ELLIPSIS
    tail_width = (width - 1) // 2
    head_width = width - 1 - tail_width
    head = _take_cells(text, head_width)
    tail = _take_cells(text[::-1], tail_width)[::-1]
    return head + ELLIPSIS + tail


def _take_cells(text: str, width: int) -> str:
    """Return the longest prefix of `text` that fits in `width` cells."""
    prefix_chars: list[str] = []
    used = 0
    for char in text:
        size = cell_len(char)
        if used + size > width:
            break
        prefix_chars.append(char)
        used += size
    return "".join(prefix_chars)
