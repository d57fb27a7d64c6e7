"""The ingest JSON text written by orjson is byte for byte what the standard `json` module writes."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_tui.analytics.json_text import canonical_bytes, response_bytes, sorted_text

_SORTED = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode
_CANONICAL = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode
_RESPONSE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


def _stdlib_canonical(value: Any) -> bytes:
    return _CANONICAL(value).encode("utf-8", "surrogatepass")


@settings(max_examples=400)
@given(_JSON_VALUES)
def test_any_json_value_matches_json(value: Any) -> None:
    """Each encoder returns the same text as `json` for any decoded JSON value."""
    assert sorted_text(value) == _SORTED(value)
    assert canonical_bytes(value) == _stdlib_canonical(value)
    assert response_bytes(value) == _RESPONSE(value).encode("utf-8")


def test_floats_match_json() -> None:
    """Random bit patterns and short decimals match `json`, including floats under 1e-4 that orjson writes differently."""
    rng = random.Random(7)
    values = [1e-05, 4.7e-07, -3.2e-05, 5e-324, 0.0001, 1e16, 1e22, -0.0, 0.1, 123456789.0, 2.0**53]
    for _ in range(20_000):
        value = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if value == value and abs(value) != float("inf"):
            values.append(value)
        values.append(rng.randint(-(10**9), 10**9) / 10 ** rng.randint(0, 12))

    for value in values:
        document = {"value": value, "list": [value]}
        assert sorted_text(document) == _SORTED(document), value
        assert canonical_bytes(document) == _stdlib_canonical(document), value
        assert response_bytes(document) == _RESPONSE(document).encode("utf-8"), value


def test_every_code_point_matches_json() -> None:
    """Every character outside the surrogate range is written as `json` writes it."""
    text = "".join(chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF)
    chunks = [text[start : start + 4096] for start in range(0, len(text), 4096)]

    for chunk in chunks:
        assert sorted_text({"s": chunk}) == _SORTED({"s": chunk})
        assert canonical_bytes({"s": chunk}) == _stdlib_canonical({"s": chunk})


def test_values_orjson_rejects_fall_back() -> None:
    """Ints over 64 bits, lone surrogates, non-string keys and deep nesting give `json`'s text."""
    deep: Any = "leaf"
    for _ in range(300):
        deep = [deep]
    for value in ({"n": 2**64}, {"n": -(2**63) - 1}, {"s": "\ud800x"}, {1: "a", 2: "b"}, deep):
        assert canonical_bytes(value) == _stdlib_canonical(value)
        assert sorted_text(value) == _SORTED(value)


def test_strings_that_look_like_numbers() -> None:
    """UUIDs and names with `e-` or `0.0000` in them keep the same text."""
    value = {
        "event_id": "ca92bd3f-525b-409e-9a75-482288624622",
        "device_id": "device-00000-c99d2f5d",
        "note": "[1e-5] ratio:0.00001",
    }

    assert canonical_bytes(value) == _stdlib_canonical(value)
    assert sorted_text(value) == _SORTED(value)


def test_non_ascii_sorted_text_is_escaped() -> None:
    """`sorted_text` escapes non-ASCII characters as `json` does by default."""
    assert sorted_text({"screen": "envoyé"}) == '{"screen":"envoy\\u00e9"}'
