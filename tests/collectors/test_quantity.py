"""Strict parsing of JSON-RPC quantities and counts."""

from __future__ import annotations

import pytest

from collectors.quantity import InvalidQuantity, parse_count, parse_quantity


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0x0", 0),
        ("0x10", 16),
        ("0x00ff", 255),
        ("0X1A", 26),
        ("0xAbC", 0xABC),
        ("0x12d687", 1_234_567),
        (123, 123),
        (0, 0),
    ],
)
def test_quantity_accepted(raw: object, expected: int) -> None:
    """Prefixed hex in either case, with leading zeros, and JSON integers parse."""
    assert parse_quantity(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "0x", "", "garbage", "123", "0xZZ", " 0x10", "0x10 ", "-0x1", -1, True, False, 1.5, 16.0, [], {}],
)
def test_quantity_rejected(raw: object) -> None:
    """null, "0x", decimal strings, garbage, negatives, booleans and floats raise."""
    with pytest.raises(InvalidQuantity):
        parse_quantity(raw)


@pytest.mark.parametrize("raw", [None, "12", -3, True, 2.0])
def test_count_rejected(raw: object) -> None:
    """A Bitcoin count must be a non-negative JSON integer."""
    with pytest.raises(InvalidQuantity):
        parse_count(raw)


def test_error_message_shows_value() -> None:
    """The message names the rejected value in JSON form."""
    with pytest.raises(InvalidQuantity, match='"0x"'):
        parse_quantity("0x")
