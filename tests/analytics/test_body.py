"""`BodyReader`: size limits checked on headers and while the body streams in."""

from __future__ import annotations

import gzip

import pytest

from atlas_tui.analytics.body import BodyReader
from atlas_tui.analytics.errors import BatchRejectedError


def _code(error: pytest.ExceptionInfo[BatchRejectedError]) -> tuple[int, str]:
    return error.value.status_code, error.value.code


def test_content_length_over_limit() -> None:
    """A `Content-Length` over the limit is rejected before any chunk arrives."""
    with pytest.raises(BatchRejectedError) as error:
        BodyReader(str(1024 * 1024 + 1), None)

    assert _code(error) == (413, "body_too_large")


def test_stream_over_limit() -> None:
    """A body without `Content-Length` is rejected at the chunk that passes the limit."""
    reader = BodyReader(None, None, max_body=100)
    reader.feed(b"x" * 60)

    with pytest.raises(BatchRejectedError) as error:
        reader.feed(b"x" * 41)

    assert _code(error) == (413, "body_too_large")


def test_gzip_in_pieces() -> None:
    """A gzip body fed one byte at a time decodes to the original."""
    original = b'{"schema": 1}' * 100
    reader = BodyReader(None, "gzip")
    for byte in gzip.compress(original):
        reader.feed(bytes([byte]))

    assert reader.finish() == original


def test_decoded_cap() -> None:
    """Decoding stops with 413 once the output passes the cap."""
    reader = BodyReader(None, "gzip", max_decoded=1000)

    with pytest.raises(BatchRejectedError) as error:
        reader.feed(gzip.compress(b"a" * 5000))

    assert _code(error) == (413, "decoded_body_too_large")


def test_invalid_gzip() -> None:
    """Bytes that are not gzip get 400 `invalid_gzip`."""
    reader = BodyReader(None, "gzip")

    with pytest.raises(BatchRejectedError) as error:
        reader.feed(b"definitely not gzip")

    assert _code(error) == (400, "invalid_gzip")


def test_truncated_gzip() -> None:
    """A gzip stream cut short gets 400 at `finish`."""
    reader = BodyReader(None, "gzip")
    reader.feed(gzip.compress(b"a" * 5000)[:-10])

    with pytest.raises(BatchRejectedError) as error:
        reader.finish()

    assert _code(error) == (400, "invalid_gzip")


def test_unsupported_encoding() -> None:
    """An encoding other than gzip gets 415."""
    with pytest.raises(BatchRejectedError) as error:
        BodyReader(None, "br")

    assert _code(error) == (415, "unsupported_encoding")
