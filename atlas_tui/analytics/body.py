"""Size-limited reading of an ingest request body, plain or gzip.

The ingest route feeds `BodyReader` the request's chunks as they arrive, so an
oversized body is rejected before it is read whole, and a small gzip body that
inflates to gigabytes is rejected once the inflated size passes the cap.
Invariants: at most `max_body` received bytes and `max_decoded` decoded bytes are
ever held in memory.
"""

from __future__ import annotations

import zlib

from atlas_tui.analytics.errors import BatchRejectedError

__all__ = ["MAX_BODY_BYTES", "MAX_DECODED_BYTES", "BodyReader"]

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted, in bytes as sent (compressed when gzip): 1 MiB."""

MAX_DECODED_BYTES = 8 * 1024 * 1024
"""Largest body after gzip decoding: 8 MiB, room for 500 events of about 16 KiB each."""

_GZIP_WBITS = 16 + zlib.MAX_WBITS


class BodyReader:
    """Collects one request body chunk by chunk, enforcing the size limits as it goes."""

    def __init__(
        self,
        content_length: str | None,
        content_encoding: str | None,
        *,
        max_body: int = MAX_BODY_BYTES,
        max_decoded: int = MAX_DECODED_BYTES,
    ) -> None:
        """Check the request headers before any byte of the body is read.

        Raises:
            BatchRejectedError: 413 when `Content-Length` is over `max_body`, 400
                when it is not a number, 415 for an encoding other than gzip.
        """
        self._max_body = max_body
        self._max_decoded = max_decoded
        self._received = 0
        self._decoded = bytearray()
        self._check_length(content_length)
        self._inflater = self._make_inflater(content_encoding)

    def feed(self, chunk: bytes) -> None:
        """Add the next chunk of the body.

        Raises:
            BatchRejectedError: 413 once the body or its decoded form is over its
                limit, 400 when the gzip data is invalid.
        """
        self._received += len(chunk)
        if self._received > self._max_body:
            raise _too_large(self._max_body)
        if self._inflater is None:
            self._decoded += chunk
            return
        try:
            self._inflate(chunk)
        except zlib.error as err:
            raise BatchRejectedError(400, "invalid_gzip", f"the gzip body cannot be decoded: {err}") from err

    def finish(self) -> bytes:
        """Return the decoded body after the last chunk.

        Raises:
            BatchRejectedError: 400 when the gzip stream ended early.
        """
        if self._inflater is not None and not self._inflater.eof:
            raise BatchRejectedError(400, "invalid_gzip", "the gzip body is truncated; send the whole stream")
        return bytes(self._decoded)

    def _inflate(self, data: bytes) -> None:
        assert self._inflater is not None
        while data:
            room = self._max_decoded - len(self._decoded) + 1
            self._decoded += self._inflater.decompress(data, room)
            if len(self._decoded) > self._max_decoded:
                raise BatchRejectedError(
                    413,
                    "decoded_body_too_large",
                    f"the body decodes to more than {self._max_decoded} bytes; send fewer events per batch",
                    {"limit": str(self._max_decoded)},
                )
            data = self._inflater.unconsumed_tail

    def _check_length(self, content_length: str | None) -> None:
        if content_length is None:
            return
        try:
            length = int(content_length)
        except ValueError as err:
            raise BatchRejectedError(400, "invalid_content_length", f"Content-Length {content_length!r} is not a number") from err
        if length > self._max_body:
            raise _too_large(self._max_body)

    @staticmethod
    def _make_inflater(content_encoding: str | None) -> zlib._Decompress | None:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding == "identity":
            return None
        if encoding == "gzip":
            return zlib.decompressobj(_GZIP_WBITS)
        raise BatchRejectedError(
            415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding",
            {"content_encoding": encoding},
        )


def _too_large(limit: int) -> BatchRejectedError:
    return BatchRejectedError(
        413, "body_too_large", f"the body is larger than {limit} bytes; send smaller batches", {"limit": str(limit)}
    )
