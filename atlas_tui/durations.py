"""Durations written as `30s`, `5m`, `2h`, `7d` or as a number of seconds.

Used by the config models and, later, by the alert condition grammar. Values are
always converted to float seconds.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["Duration", "format_duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: str | float | int) -> float:
    """Convert `value` to seconds.

    Raises:
        ValueError: the text is not a non-negative number followed by ms, s, m, h, d or w.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m or 2h, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a non-negative duration, got {value!r}")
        return float(value)
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(f"expected a duration such as 30s, 5m or 2h, got {value!r}")
    number, unit = match.groups()
    return float(number) * _UNITS[unit or "s"]


def format_duration(seconds: float) -> str:
    """Format seconds in the largest unit that divides them exactly (`300` → `5m`)."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: accepts `"30s"`-style text or seconds, stores float seconds."""
