"""Tests of the console's number, age and truncation formatting."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from atlas_tui.console.formatting import (
    format_age,
    format_axis_value,
    format_bytes,
    format_value,
    printable,
    truncate_cells,
)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (45.24, "percent", "45.2 %"),
        (1_572_864.0, "bytes_per_second", "1.5 MiB/s"),
        (512.0, "bytes", "512 B"),
        (0.754, "load", "0.75"),
        (1234.0, "count", "1,234"),
        (3725.0, "seconds", "1h 2m"),
    ],
)
def test_format_value_units(value: float, unit: str, expected: str) -> None:
    """Each unit prints in its own form."""
    assert format_value(value, unit) == expected  # type: ignore[arg-type]


def test_format_bytes_largest_prefix() -> None:
    """Byte counts beyond PiB stay in PiB instead of failing."""
    assert format_bytes(2.0 * 1024**6) == "2048.0 PiB"


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [(100.0, "percent", "100"), (2.5, "load", "2.5"), (2 * 1024**2, "bytes_per_second", "2M"), (1024.0, "bytes", "1K")],
)
def test_axis_value_compact(value: float, unit: str, expected: str) -> None:
    """Axis ticks are short and drop a trailing `.0`."""
    assert format_axis_value(value, unit) == expected  # type: ignore[arg-type]


def test_age_unknown_and_future() -> None:
    """A missing age prints a dash and a negative age does not print a minus sign."""
    assert format_age(None) == "—"
    assert format_age(-3.0) == "in the future"
    assert format_age(75.0) == "1m 15s ago"


def test_printable_replaces_controls() -> None:
    """Newlines, escapes and tabs in a label are replaced so they cannot move the cursor."""
    assert printable("a\nb\x1b[2Jc\td") == "a\ufffdb\ufffd[2Jc\ufffdd"


def test_truncate_fits_unchanged() -> None:
    """A text that fits is returned as it is."""
    assert truncate_cells("/home", 10) == "/home"


def test_truncate_start_marks_cut() -> None:
    """Keeping the start cuts the end and adds an ellipsis within the width."""
    assert truncate_cells("abcdefghij", 5) == "abcd…"


def test_truncate_middle_keeps_both_ends() -> None:
    """A long path keeps its first and last characters."""
    path = "/" + "a" * 199
    result = truncate_cells(path + "/data", 20, keep="middle")
    assert cell_len(result) == 20
    assert result.startswith("/aaa")
    assert result.endswith("/data")
    assert "…" in result


def test_truncate_wide_characters() -> None:
    """CJK and emoji count two cells and are never split."""
    result = truncate_cells("データボリューム💾", 6)
    assert cell_len(result) <= 6
    assert result == "デー…"


@pytest.mark.parametrize("width", [-1, 0, 1])
def test_truncate_tiny_widths(width: int) -> None:
    """Widths of one cell or less give at most the ellipsis."""
    assert cell_len(truncate_cells("abcdef", width)) <= max(width, 0)
