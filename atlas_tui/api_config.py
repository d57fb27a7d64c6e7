"""The `api` section of the config file: listen address, TLS, allowed hosts, CORS and limits.

`atlas_tui.config.Config.api` is one `ApiConfig`. The daemon reads `bind` and the TLS
files when it opens the socket (`atlas daemon --bind` overrides `bind`), and
`atlas_tui.api.security` builds the middleware from the rest. The API's TCP port stays
the top-level `port`, as in the original dashboard's config. Invariants: `bind` is an
IP address literal; `tls_cert` and `tls_key` are set together or not at all.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

__all__ = ["ApiConfig", "ApiRateLimits", "DEFAULT_BIND", "is_loopback"]

DEFAULT_BIND = "127.0.0.1"
"""Address the API listens on unless the config or `--bind` sets another."""

_ORIGIN = re.compile(r"https?://[^/\s?#]+")
_HOST = re.compile(r"(\*\.)?[A-Za-z0-9._\-\[\]:]+|\*")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ApiRateLimits(_Section):
    """Request rates above which the API responds 429 with `Retry-After`.

    Each limit is a token bucket with room for 10 seconds' worth of requests, so a
    client may send a burst after a quiet spell. The analytics ingest route has its own
    limits under `analytics.rate_limits`, and `/healthz` and `/readyz` have none.
    """

    per_token_per_minute: StrictInt = Field(default=600, ge=0, le=1_000_000)
    """Requests one token may make per minute, or 0 for no limit."""
    per_address_per_minute: StrictInt = Field(default=1200, ge=0, le=1_000_000)
    """Requests one client address may make per minute, counted before the token is checked, or 0 for no limit."""


class ApiConfig(_Section):
    """The daemon's HTTP API."""

    bind: str = DEFAULT_BIND
    """IP address to listen on. Any address that is not loopback needs API tokens and `allowed_hosts`."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host header values accepted besides the loopback names, such as `atlas.example.org`. `*.example.org` and `*` match many."""
    tls_cert: Path | None = None
    """PEM certificate (chain) file. With `tls_key` set too, the API serves HTTPS and sends HSTS."""
    tls_key: Path | None = None
    """PEM private key file of `tls_cert`."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API, such as `https://ops.example.org`. Empty allows none."""
    max_body_bytes: StrictInt = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Largest request body in bytes; a larger one gets 413 before it is read. The ingest route has its own limit."""
    rate_limits: ApiRateLimits = Field(default_factory=ApiRateLimits)
    """Per-token and per-address request rates."""

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"expected an IP address such as 127.0.0.1, 0.0.0.0 or ::1, got {value!r}") from None
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _HOST.fullmatch(value):
                raise ValueError(f"expected a host name or address without scheme or path, got {value!r}")
        return values

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _ORIGIN.fullmatch(value):
                raise ValueError(
                    f"expected an origin such as https://ops.example.org (scheme and host, no path or '*'), got {value!r}"
                )
        return values

    @model_validator(mode="after")
    def _check_tls_pair(self) -> ApiConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            raise ValueError(f"tls_cert and tls_key go together; set {missing} as well, or remove both")
        return self

    @property
    def tls(self) -> bool:
        """True when a certificate and key are configured."""
        return self.tls_cert is not None


def is_loopback(address: str) -> bool:
    """Return True when `address` (an IP literal) is a loopback address such as 127.0.0.1 or ::1."""
    return ipaddress.ip_address(address).is_loopback
