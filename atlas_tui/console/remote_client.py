"""`ApiClient`: blocking calls to an ATLAS daemon's HTTP API, and the link state they leave.

`RemoteSource` owns one client and calls it only from the console's data loop
thread, so the client keeps one httpx connection pool and needs no lock. Every call
updates `link`: a response sets `connected`, no response (connection refused, TLS
failure, timeout) or a 429/5xx sets `reconnecting`, and 401, or 403 on a read, sets
`auth_failed`. Nothing retries inside a call, because the data loop's next read is
the retry.

Errors, all `AtlasError`, so the console shows their message as it is:

    RemoteError
    ├── TokenFileError       the token file is missing, unreadable or empty
    ├── LinkError            the daemon cannot serve the request now; `RemoteSource`
    │   │                    turns these into link state instead of failing
    │   ├── LinkDownError    no response, or 429 or 5xx
    │   └── AuthRejectedError  401, or 403
    └── ApiResponseError     any other error status, or a body of the wrong shape

Invariants: the token is read from its file, sent only in the `Authorization`
header, and never logged or put in a message. TLS certificates are verified, against
`ca_file` when one is given. A token file that was rejected is read again before the
next request, so fixing the file recovers the link without a restart.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx

from atlas_tui import __version__
from atlas_tui.console.source import LinkState, RemoteLink
from atlas_tui.errors import AtlasError

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "ApiClient",
    "ApiResponseError",
    "AuthRejectedError",
    "LinkDownError",
    "LinkError",
    "RemoteError",
    "TokenFileError",
    "is_private_link",
    "parse_target",
    "read_token",
    "tls_context",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
"""Seconds a request may take before the link counts as down. The console's quit
waits for a request in flight, so this also bounds how long quitting can take."""

CONNECT_TIMEOUT = 3.0
"""Seconds to open the TCP connection and finish the TLS handshake."""

_CREATE_HINT = "create one on the daemon's host with `atlas api token create --name NAME --scope read,ack`"

RequiredScope = Literal["read", "ack"]
"""Scope a call needs. A 403 on an `ack` call rejects that action only, so the link
stays as it was."""


class RemoteError(AtlasError):
    """Base of the errors of a console attached to a remote daemon."""


class TokenFileError(RemoteError):
    """Raised when the token file cannot be read or is empty."""


class LinkError(RemoteError):
    """Raised when the daemon cannot serve a request now; `ApiClient.link` and the message give the reason."""


class LinkDownError(LinkError):
    """Raised when no response arrived (connection refused, TLS failure, timeout), or a 429 or 5xx did."""


class AuthRejectedError(LinkError):
    """Raised on 401 (unknown or revoked token) and 403 (token lacks the scope)."""

    def __init__(self, message: str, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(message)


class ApiResponseError(RemoteError):
    """Raised on an error status other than 401, 403, 429 and 5xx, or a body that is not the expected JSON.

    `status_code` is the HTTP status, `code` the error body's `error.code` (empty when
    the body has none) and `details` its `error.details`.
    """

    def __init__(self, message: str, status_code: int, code: str = "", details: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.code = code
        self.details = details or {}
        super().__init__(message)


def parse_target(url: str) -> str:
    """Check a `--connect` URL and return its base, `scheme://host:port`.

    Raises:
        RemoteError: the URL is not http or https, has no host, or has a path, query,
            fragment or user name.
    """
    form = "use http://HOST:PORT or https://HOST:PORT, for example https://atlas-1.example.org:8080"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        raise RemoteError(f"invalid --connect URL {url!r}: {err}; {form}") from err
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteError(f"invalid --connect URL {url!r}; {form}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        raise RemoteError(f"invalid --connect URL {url!r}: it must not have a path, query or user name; {form}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}:{port or default_port}"


def is_private_link(base_url: str) -> bool:
    """Return whether requests to `base_url` stay private: https, or http to a loopback address."""
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    """Return the bearer token from the first line of `path`.

    Raises:
        TokenFileError: the file cannot be read or its first line is empty.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TokenFileError(f"cannot read the API token file {path}: {err.strerror or err}; {_CREATE_HINT}") from err
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise TokenFileError(f"the API token file {path} is empty; {_CREATE_HINT} and write it to the file")
    return lines[0].strip()


def tls_context(ca_file: Path | None) -> ssl.SSLContext | bool:
    """Return httpx's `verify` value: a context trusting `ca_file`, or True for the default bundle.

    Raises:
        RemoteError: the CA file cannot be read or contains no PEM certificate.
    """
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as err:
        raise RemoteError(f"cannot load the CA file {ca_file}: {err}; give a PEM file with --ca-file") from err


class ApiClient:
    """HTTP client of one daemon's API that records the state of the link after each call.

    Args:
        base_url: The daemon's API, `scheme://host:port` (see `parse_target`).
        token_file: File whose first line is the bearer token.
        ca_file: PEM file of the certificate authorities to trust for https; None
            uses httpx's default bundle (certifi).
        timeout: Seconds a request may take.
        transport: httpx transport; None opens real connections.

    Raises:
        TokenFileError: the token file cannot be read.
        RemoteError: the CA file cannot be loaded.
    """

    def __init__(
        self,
        base_url: str,
        token_file: Path,
        *,
        ca_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.token_file = token_file
        self._token = read_token(token_file)
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
            verify=tls_context(ca_file),
            headers={"User-Agent": f"atlas-console/{__version__}"},
            follow_redirects=False,
            transport=transport,
        )
        self._timeout = timeout
        self._state: LinkState = "reconnecting"
        self._http_status: int | None = None
        self._problem: str | None = f"connecting to {base_url}"
        self._failures = 0

    @property
    def link(self) -> RemoteLink:
        """The link after the latest call; `reconnecting` before the first."""
        return RemoteLink(self.base_url, self._state, self._http_status)

    @property
    def problem(self) -> str | None:
        """Why the latest call failed, for the header; None while connected."""
        return self._problem

    def get(self, path: str, params: list[tuple[str, str]] | None = None) -> object:
        """Send `GET path` and return the decoded JSON body.

        Raises:
            LinkDownError: no response, or 429 or 5xx.
            AuthRejectedError: 401 or 403.
            ApiResponseError: another error status, or a body that is not JSON.
        """
        return self._send("GET", path, params=params, scope="read")

    def post(self, path: str, body: dict[str, str] | None) -> object:
        """Send `POST path` with a JSON body (or none), for a call that needs the `ack` scope; see `get`."""
        return self._send("POST", path, json=body, scope="ack")

    def close(self) -> None:
        """Close the connection pool; safe to call twice."""
        self._client.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        scope: RequiredScope,
        params: list[tuple[str, str]] | None = None,
        json: dict[str, str] | None = None,
    ) -> object:
        if self._state == "auth_failed":
            self._token = read_token(self.token_file)
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            response = self._client.request(method, path, params=params, json=json, headers=headers)
        except httpx.TimeoutException as err:
            raise self._link_down(f"no response from {self.base_url} within {self._timeout:g} s") from err
        except httpx.TransportError as err:
            raise self._link_down(f"cannot reach {self.base_url}: {str(err) or type(err).__name__}") from err
        self._check_status(response, method, path, scope)
        self._connected()
        try:
            return response.json()
        except ValueError as err:
            raise ApiResponseError(f"{method} {path} on {self.base_url} returned a body that is not JSON", 200) from err

    def _check_status(self, response: httpx.Response, method: str, path: str, scope: RequiredScope) -> None:
        status = response.status_code
        if status < 400:
            return
        code, message, details = _error_body(response)
        if status in (401, 403):
            raise self._rejected(status, method, path, scope, message)
        if status == 429 or status >= 500:
            retry = response.headers.get("Retry-After")
            wait = f", retry after {retry} s" if retry else ""
            raise self._link_down(f"{self.base_url} returned HTTP {status} for {method} {path}{wait}: {message}")
        raise ApiResponseError(f"{method} {path} failed with HTTP {status}: {message}", status, code, details)

    def _rejected(self, status: int, method: str, path: str, scope: RequiredScope, message: str) -> AuthRejectedError:
        if status == 401:
            text = (f"HTTP 401 from {self.base_url}: the token in {self.token_file} is unknown or revoked; "
                    f"{_CREATE_HINT}")
        else:
            text = (f"HTTP 403 from {self.base_url}: the token in {self.token_file} lacks the {scope} scope "
                    f"that {method} {path} needs; {_CREATE_HINT}")
        error = AuthRejectedError(text, status)
        if status == 403 and scope == "ack":
            return error  # reads still work, so only this action failed
        if self._state != "auth_failed":
            logger.error("remote api rejected the token target=%s status=%d token_file=%s reason=%s",
                         self.base_url, status, self.token_file, message)
        self._set_state("auth_failed", text, status)
        return error

    def _link_down(self, text: str) -> LinkDownError:
        self._failures += 1
        if self._state != "reconnecting" or self._failures == 1:
            logger.warning("remote link down target=%s error=%s", self.base_url, text)
        self._set_state("reconnecting", text, None)
        return LinkDownError(text)

    def _connected(self) -> None:
        if self._state != "connected":
            logger.info("remote link up target=%s failed_attempts=%d", self.base_url, self._failures)
        self._failures = 0
        self._set_state("connected", None, None)

    def _set_state(self, state: LinkState, problem: str | None, http_status: int | None) -> None:
        self._state = state
        self._problem = problem
        self._http_status = http_status


def _error_body(response: httpx.Response) -> tuple[str, str, dict[str, str]]:
    """Return `(code, message, details)` of an error response, in the API's shared shape or FastAPI's."""
    try:
        body = response.json()
    except ValueError:
        return "", response.reason_phrase or "no message", {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        details = error.get("details")
        details = {str(k): str(v) for k, v in details.items()} if isinstance(details, dict) else {}
        return str(error.get("code", "")), str(error.get("message", "")), details
    if isinstance(body, dict) and "detail" in body:
        return "", str(body["detail"]), {}
    return "", response.reason_phrase or "no message", {}
