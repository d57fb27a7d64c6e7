"""Strict parsing of the numbers that blockchain nodes return over JSON-RPC.

The Ethereum and Bitcoin Core readers call these functions on every value they turn
into a sample. A value that does not parse raises `InvalidQuantity`, and the reader
leaves that one sample out of the cycle: a node that returns `null`, `"0x"` or
garbage for its block number never produces a stored height of 0.

Accepted Ethereum quantities (`parse_quantity`):

- hex strings with a `0x` or `0X` prefix and at least one digit, in either case and
  with leading zeros (`"0x1a"`, `"0X1A"`, `"0x00ff"`). The JSON-RPC specification
  forbids leading zeros, but some nodes and proxies send them and their meaning is
  clear.
- non-negative JSON integers (`123`). The specification requires hex strings, but a
  JSON integer has only one meaning, and some proxies re-encode quantities that way.

Rejected: `null`, `"0x"`, a decimal string such as `"123"` (hex or decimal cannot be
distinguished), negative values, booleans, fractional numbers, and anything else.
"""

from __future__ import annotations

import json
import re

__all__ = ["InvalidQuantity", "describe_value", "parse_count", "parse_quantity"]

_HEX_QUANTITY = re.compile(r"0[xX][0-9a-fA-F]+")
_PREVIEW_LENGTH = 40


class InvalidQuantity(ValueError):
    """Raised when a node returns a value that is not a valid quantity or count."""


def parse_quantity(value: object) -> int:
    """Parse an Ethereum JSON-RPC quantity into an int.

    Raises:
        InvalidQuantity: `value` is not a prefixed hex string or a non-negative
            JSON integer; the message shows the value.
    """
    if isinstance(value, str):
        if _HEX_QUANTITY.fullmatch(value) is None:
            raise InvalidQuantity(f"expected a hex quantity such as 0x1a, got {describe_value(value)}")
        return int(value[2:], 16)
    return parse_count(value)


def parse_count(value: object) -> int:
    """Parse a non-negative JSON integer, as Bitcoin Core returns block and peer counts.

    Raises:
        InvalidQuantity: `value` is not a non-negative integer; the message shows the value.
    """
    # bool is a subclass of int, and `true` is no block height.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidQuantity(f"expected a non-negative integer, got {describe_value(value)}")
    if value < 0:
        raise InvalidQuantity(f"expected a non-negative integer, got {value}")
    return value


def describe_value(value: object) -> str:
    """Return a short, printable form of a JSON value for messages and logs."""
    text = json.dumps(value, default=str)
    if len(text) > _PREVIEW_LENGTH:
        text = text[:_PREVIEW_LENGTH] + "…"
    return text
