"""Self-signed certificates for 127.0.0.1 made with the `openssl` command, for HTTPS probe tests."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["TlsFiles", "make_certificate", "server_context"]


@dataclass(frozen=True)
class TlsFiles:
    """A certificate and its key as PEM files."""

    cert: Path
    key: Path


def make_certificate(directory: Path, days: int) -> TlsFiles:
    """Create a self-signed certificate for 127.0.0.1 valid for `days` days from now."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (Debian package openssl)")
    cert, key = directory / f"cert-{days}.pem", directory / f"key-{days}.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return TlsFiles(cert, key)


def not_after_from_openssl(cert: Path) -> str:
    """Return openssl's own reading of the certificate's notAfter (`Jan  3 21:15:37 2027 GMT`)."""
    output = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-enddate"], check=True, capture_output=True, text=True
    ).stdout
    return output.strip().removeprefix("notAfter=")


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """Return a server-side TLS context serving the certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context
