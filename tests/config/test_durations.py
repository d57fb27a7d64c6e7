"""Duration text such as 30s, 5m and 2h."""

from __future__ import annotations

import pytest

from atlas_tui.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("7d", 604800.0), ("250ms", 0.25), ("1.5m", 90.0), (12, 12.0)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    """Each unit converts to seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "-3s", "m5", True, -1])
def test_parse_duration_rejects(text: object) -> None:
    """Malformed or negative durations raise ValueError naming the value."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seconds", "text"), [(300, "5m"), (7200, "2h"), (45, "45s"), (0.5, "0.5s")])
def test_format_duration(seconds: float, text: str) -> None:
    """Durations format in the largest exact unit."""
    assert format_duration(seconds) == text
