"""Read the end of a certificate's validity (`notAfter`) from its DER encoding.

The HTTP probe (`collectors.http_probe`) takes the server certificate in binary
form from the TLS connection and calls `certificate_not_after` to compute
`tls_cert_days_left`. Reading the DER itself works whether or not the certificate
verified, so an expired or self-signed certificate still reports its days left;
Python's `ssl` only decodes the fields of a verified certificate.

Only the path to the validity field is walked (RFC 5280, section 4.1):
`Certificate → tbsCertificate → [version] serialNumber signature issuer validity`.
Times are UTCTime (two-digit years: 50–99 are 19xx, 00–49 are 20xx) or
GeneralizedTime, both in UTC as RFC 5280 requires.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["CertificateParseError", "certificate_not_after"]

_SEQUENCE = 0x30
_VERSION = 0xA0
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18


class CertificateParseError(ValueError):
    """Raised when the bytes are not a DER certificate with a readable validity field."""


def certificate_not_after(der: bytes) -> float:
    """Return the certificate's `notAfter` as UTC epoch seconds.

    Raises:
        CertificateParseError: the bytes are not a DER certificate, or its validity is malformed.
    """
    certificate = _enter(der, 0, _SEQUENCE)
    tbs = _enter(der, certificate, _SEQUENCE)
    position = tbs
    tag, _, end = _element(der, position)
    if tag == _VERSION:
        position = end
    for _field in ("serialNumber", "signature", "issuer"):
        _, _, position = _element(der, position)
    validity = _enter(der, position, _SEQUENCE)
    _, _, after_not_before = _element(der, validity)
    tag, start, end = _element(der, after_not_before)
    return _parse_time(tag, der[start:end])


def _enter(der: bytes, position: int, expected_tag: int) -> int:
    """Return the offset of the first element inside the constructed element at `position`."""
    tag, start, _ = _element(der, position)
    if tag != expected_tag:
        raise CertificateParseError(f"expected DER tag 0x{expected_tag:02x} at offset {position}, got 0x{tag:02x}")
    return start


def _element(der: bytes, position: int) -> tuple[int, int, int]:
    """Return `(tag, content start, content end)` of the DER element at `position`."""
    if position + 2 > len(der):
        raise CertificateParseError(f"certificate ends early at offset {position}")
    tag = der[position]
    length = der[position + 1]
    start = position + 2
    if length & 0x80:
        size = length & 0x7F
        if size == 0 or size > 4 or start + size > len(der):
            raise CertificateParseError(f"unsupported DER length at offset {position}")
        length = int.from_bytes(der[start:start + size], "big")
        start += size
    end = start + length
    if end > len(der):
        raise CertificateParseError(f"DER element at offset {position} runs past the end")
    return tag, start, end


def _parse_time(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii", errors="replace")
    if tag == _UTC_TIME:
        layout = "%y%m%d%H%M%SZ"
    elif tag == _GENERALIZED_TIME:
        layout = "%Y%m%d%H%M%SZ"
    else:
        raise CertificateParseError(f"expected a UTCTime or GeneralizedTime, got DER tag 0x{tag:02x}")
    try:
        # strptime's %y maps 69–99 to 19xx, but RFC 5280 moves the pivot to 50.
        moment = datetime.strptime(text, layout).replace(tzinfo=timezone.utc)
    except ValueError as err:
        raise CertificateParseError(f"invalid certificate time {text!r}") from err
    if tag == _UTC_TIME and 50 <= moment.year - 2000 <= 68:
        moment = moment.replace(year=moment.year - 100)
    return moment.timestamp()
