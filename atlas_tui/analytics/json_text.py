"""JSON text of the ingest path: written by orjson, byte for byte what the standard `json` module writes.

`ingest.prepare_batch` encodes three values per event: the stored `attrs` and
`properties`, and the canonical text behind the event's content hash. The route
encodes one response per batch. `json` builds a new C encoder on every call: on the
2-core benchmark VM it took 1.2 µs for a dict of one key and 4 µs for a whole event,
where orjson takes 0.4 µs. Preparing an event went from 24 to 19 µs with orjson.

Invariant: every function returns exactly the text `json` returns, for the values that
JSON decoding and the event models produce.
Content hashes are compared with hashes stored by earlier versions, so an event stored
before an upgrade and resent after it must hash alike, or it would be rejected as a
`dedup_conflict`.

orjson 3.13 writes the same text as `json` with compact separators for strings
without lone surrogates, integers within 64 bits, booleans, null, lists, dicts with
string keys, and floats of magnitude 1e-4 or more (tests/analytics/test_json_text.py
compares them). It differs for smaller floats: orjson writes `0.00001` and `1e-7`
where `json` writes `1e-05` and `1e-07`. So each function uses `json` instead when
orjson raises, or its output contains `0.0000` or a number with `e-` after `:`, `,`
or `[`. A string that happens to look like that takes the slower path too, with the
same result.
"""

from __future__ import annotations

import json

import orjson

__all__ = ["canonical_bytes", "response_bytes", "sorted_text"]

_PLAIN_TYPES_ONLY = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
"""Make orjson raise on dataclasses, dates and subclasses of str, int, dict and list
instead of writing them its own way, so those go to `json` as before."""
_SORTED = orjson.OPT_SORT_KEYS | _PLAIN_TYPES_ONLY
_DIGITS = frozenset(b"0123456789")
_MANTISSA = frozenset(b"0123456789.")
_MINUS = ord("-")
_VALUE_START = frozenset(b":,[")

_JSON_SORTED = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode
_JSON_CANONICAL = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode
_JSON_RESPONSE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def sorted_text(value: object) -> str:
    """Return `json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)`.

    Non-ASCII characters come out as `\\u` escapes, as `json` writes them by default.
    """
    text = _orjson_or_none(value, _SORTED)
    if text is None or not text.isascii():
        return _JSON_SORTED(value)
    return text.decode("ascii")


def canonical_bytes(value: object) -> bytes:
    """Return the UTF-8 of `json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)`.

    Lone surrogates are written as themselves (`surrogatepass`), so any decoded JSON
    has a canonical form.
    """
    text = _orjson_or_none(value, _SORTED)
    if text is None:
        return _JSON_CANONICAL(value).encode("utf-8", "surrogatepass")
    return text


def response_bytes(value: object) -> bytes:
    """Return the UTF-8 of `json.dumps(value, separators=(",", ":"), ensure_ascii=False)`, keys in dict order.

    Raises:
        UnicodeEncodeError: a string contains a lone surrogate.
    """
    text = _orjson_or_none(value, _PLAIN_TYPES_ONLY)
    if text is None:
        return _JSON_RESPONSE(value).encode("utf-8")
    return text


def _orjson_or_none(value: object, options: int) -> bytes | None:
    """Return orjson's text of `value` when it is known to equal `json`'s, else None."""
    try:
        text = orjson.dumps(value, option=options)
    except TypeError:
        # orjson.JSONEncodeError is a TypeError: an int over 64 bits, a lone
        # surrogate, a non-string key, nesting deeper than 254, or a passthrough type.
        return None
    if b"0.0000" in text or _has_negative_exponent(text):
        return None
    return text


def _has_negative_exponent(text: bytes) -> bool:
    """Return True when `text` has a number such as `1.5e-7` outside strings, or a string that looks like one."""
    # Strings contain `e-` often: "device-1", and UUIDs such as "...-409e-9a75-...".
    # A number starts right after `:`, `,` or `[`, which a UUID's digits never do.
    start = text.find(b"e-")
    while start > 0:
        if text[start - 1] in _DIGITS and _follows_value_start(text, start - 1):
            return True
        start = text.find(b"e-", start + 2)
    return False


def _follows_value_start(text: bytes, index: int) -> bool:
    """Return True when the digits and dots ending at `index`, with an optional `-`, follow `:`, `,` or `[`."""
    while index >= 0 and text[index] in _MANTISSA:
        index -= 1
    if index >= 0 and text[index] == _MINUS:
        index -= 1
    return index < 0 or text[index] in _VALUE_START
