"""How the store encodes time: integer milliseconds in the database, float seconds outside.

Every column named `*_ms` stores UTC epoch milliseconds as an INTEGER, so
primary keys compare exactly and duplicate writes of one reading replace each
other. The public API takes and returns UTC epoch seconds as floats.
"""

from __future__ import annotations

MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def to_ms(seconds: float) -> int:
    """Convert UTC epoch seconds to the nearest integer millisecond."""
    return round(seconds * 1000)


def from_ms(milliseconds: int) -> float:
    """Convert integer milliseconds back to UTC epoch seconds."""
    return milliseconds / 1000


def floor_ms(milliseconds: int, step_ms: int) -> int:
    """Round `milliseconds` down to a multiple of `step_ms` (bucket start)."""
    return milliseconds // step_ms * step_ms
