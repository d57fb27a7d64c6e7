"""Reading notAfter from DER certificates: real ones from openssl, and hand-built edge cases."""

from __future__ import annotations

import ssl
from datetime import datetime, timezone
from pathlib import Path

import pytest

from collectors.x509_validity import CertificateParseError, certificate_not_after
from tests.collectors.tls_certs import make_certificate, not_after_from_openssl


def der_element(tag: int, content: bytes) -> bytes:
    """Encode one DER element (short or long length form)."""
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


def fake_certificate(not_after: bytes, time_tag: int, with_version: bool = True) -> bytes:
    """Build the DER skeleton of a certificate whose validity ends at `not_after`."""
    version = der_element(0xA0, der_element(0x02, b"\x02")) if with_version else b""
    serial = der_element(0x02, b"\x01")
    algorithm = der_element(0x30, der_element(0x06, b"\x2a\x86\x48\xce\x3d\x04\x03\x02"))
    issuer = der_element(0x30, b"")
    validity = der_element(0x30, der_element(0x17, b"250101000000Z") + der_element(time_tag, not_after))
    padding = der_element(0x04, b"x" * 200)  # pushes the outer lengths into the long form
    tbs = der_element(0x30, version + serial + algorithm + issuer + validity + padding)
    return der_element(0x30, tbs + algorithm + der_element(0x03, b"\x00"))


def test_openssl_certificate(tmp_path: Path) -> None:
    """notAfter of a certificate made by openssl matches openssl's own reading."""
    files = make_certificate(tmp_path, days=30)
    der = ssl.PEM_cert_to_DER_cert(files.cert.read_text())

    expected = ssl.cert_time_to_seconds(not_after_from_openssl(files.cert))

    assert certificate_not_after(der) == expected


@pytest.mark.parametrize(
    ("raw", "tag", "year"),
    [
        (b"491231235959Z", 0x17, 2049),
        (b"500101000000Z", 0x17, 1950),
        (b"690101000000Z", 0x17, 1969),
        (b"991231235959Z", 0x17, 1999),
        (b"20510101000000Z", 0x18, 2051),
    ],
)
def test_time_forms(raw: bytes, tag: int, year: int) -> None:
    """UTCTime pivots at 50 as RFC 5280 requires; GeneralizedTime keeps four digits."""
    moment = datetime.fromtimestamp(certificate_not_after(fake_certificate(raw, tag)), tz=timezone.utc)

    assert moment.year == year


def test_version_field_optional() -> None:
    """A v1 certificate without the explicit version field still parses."""
    der = fake_certificate(b"300101000000Z", 0x17, with_version=False)

    assert datetime.fromtimestamp(certificate_not_after(der), tz=timezone.utc).year == 2030


@pytest.mark.parametrize("der", [b"", b"\x30", b"\x02\x01\x01", b"\x30\x84\xff\xff\xff\xff", b"not a certificate"])
def test_garbage_rejected(der: bytes) -> None:
    """Bytes that are not a certificate raise CertificateParseError."""
    with pytest.raises(CertificateParseError):
        certificate_not_after(der)


def test_invalid_time_rejected() -> None:
    """A validity time that is not a date raises CertificateParseError."""
    with pytest.raises(CertificateParseError):
        certificate_not_after(fake_certificate(b"99999999999999Z", 0x18))
