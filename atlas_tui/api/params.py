"""Query parameters shared by the metric routes: label filters, times and steps.

Each parser takes the raw text FastAPI received and returns a plain value, or raises
`AlertApiError` (422, code `invalid_request`) whose message names the parameter, the
value and the accepted form. So every route rejects bad input in the shared error
shape. Times are UTC epoch seconds.
"""

from __future__ import annotations

import math
from datetime import datetime

from atlas_tui.api.alerts import AlertApiError
from atlas_tui.durations import parse_duration

__all__ = ["invalid_parameter", "parse_labels", "parse_step", "parse_time"]

LABEL_FORM = "KEY:VALUE, for example label=mount:/"
"""The accepted form of one `label` parameter, quoted in error messages."""

MAX_TIME = 253402300799.0
"""Latest accepted time, 9999-12-31T23:59:59Z; later ones cannot be stored as milliseconds."""

MIN_STEP = 0.001
"""Smallest accepted step in seconds, the store's millisecond resolution."""

TIME_FORM = "UTC epoch seconds (1750000000), ISO 8601 with an offset (2025-06-15T15:06:40Z) or a past offset from now (-1h)"
"""The accepted forms of `from` and `to`, quoted in error messages."""


def invalid_parameter(name: str, value: str, problem: str) -> AlertApiError:
    """Build the 422 error for query parameter `name`; `problem` names the fault and the fix."""
    return AlertApiError(
        422,
        "invalid_request",
        f"invalid query.{name} {value!r}: {problem}",
        {"field": f"query.{name}", "value": value},
    )


def parse_labels(values: list[str] | None) -> dict[str, str]:
    """Turn repeated `label=KEY:VALUE` parameters into a label subset to match.

    The text is split at its first colon, so values may contain colons (`target:
    https://host:443`) but keys may not.

    Raises:
        AlertApiError: a parameter has no colon or an empty key, or one key is given
            twice with different values.
    """
    labels: dict[str, str] = {}
    for text in values or []:
        key, colon, value = text.partition(":")
        key = key.strip()
        if not colon or not key:
            raise invalid_parameter("label", text, f"write {LABEL_FORM}")
        if key in labels and labels[key] != value:
            problem = f"label {key} is already given as {labels[key]!r}; a series has one value per label"
            raise invalid_parameter("label", text, problem)
        labels[key] = value
    return labels


def parse_time(name: str, value: str | None, *, default: float, now: float) -> float:
    """Parse `from` or `to`: epoch seconds, ISO 8601 with an offset, or `-DURATION` before `now`.

    Raises:
        AlertApiError: the text matches no accepted form, an ISO time lacks an offset,
            or the time is before 1970 or after `MAX_TIME`.
    """
    if value is None or not value.strip():
        return default
    text = value.strip()
    if text.startswith("-"):
        try:
            seconds = now - parse_duration(text[1:])
        except ValueError:
            raise invalid_parameter(name, value, f"use {TIME_FORM}") from None
    else:
        try:
            seconds = float(text)
        except ValueError:
            seconds = _parse_iso(name, value)
    if not math.isfinite(seconds) or not 0.0 <= seconds <= MAX_TIME:
        raise invalid_parameter(name, value, "the time must lie between 1970-01-01 and 9999-12-31 UTC")
    return seconds


def parse_step(value: str | None) -> float | None:
    """Parse `step` as seconds (`60`) or a duration (`30s`, `5m`, `1h`); None when absent.

    Raises:
        AlertApiError: the text is not a duration, or it is outside 1 ms to `MAX_TIME` seconds.
    """
    if value is None or not value.strip():
        return None
    try:
        step = parse_duration(value.strip())
    except ValueError:
        raise invalid_parameter("step", value, "use seconds or a duration such as 30s, 5m or 1h") from None
    if step <= 0 or not math.isfinite(step):
        raise invalid_parameter("step", value, "the step must be greater than 0, such as 60s")
    if not MIN_STEP <= step <= MAX_TIME:
        raise invalid_parameter("step", value, "the step must lie between 1ms and 9999 years, such as 60s")
    return step


def _parse_iso(name: str, value: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid_parameter(name, value, f"use {TIME_FORM}") from None
    if parsed.tzinfo is None:
        raise invalid_parameter(name, value, "add a UTC offset such as Z or +00:00 to the time")
    return parsed.timestamp()
