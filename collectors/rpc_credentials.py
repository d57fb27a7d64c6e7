"""Credentials for a node's JSON-RPC endpoint: a Bitcoin Core cookie file or a user and password.

The node collector builds one `RpcCredentials` per node from its `auth` config, and
the JSON-RPC client asks it for HTTP basic credentials before each request. The
password never comes from the config file: it is read from the environment variable
the config names, or from the cookie file that Bitcoin Core writes at start-up.

Invariants:

- A secret is never logged and never part of an exception message; messages name
  the environment variable or the cookie file path instead.
- The cookie file is read on first use and again only when `get(refresh=True)` is
  called, which the client does once after an HTTP 401 (Bitcoin Core writes a new
  cookie on every restart).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BasicCredentials", "CredentialsError", "RpcCredentials"]


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """User and password for HTTP basic authentication."""

    user: str
    """User name."""
    password: str = ""
    """Password; never logged."""

    def __repr__(self) -> str:
        return f"BasicCredentials(user={self.user!r}, password=<hidden>)"


class CredentialsError(Exception):
    """Raised when the configured credentials cannot be read; the message names what to fix."""


class RpcCredentials:
    """The credentials of one node, read lazily from a cookie file or the environment."""

    def __init__(
        self,
        *,
        user: str | None = None,
        password_env: str | None = None,
        cookie_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Describe where the credentials come from; nothing is read yet.

        Args:
            user: User name for basic authentication with `password_env`.
            password_env: Name of the environment variable that contains the password.
            cookie_file: Bitcoin Core's `.cookie` file (`__cookie__:<hex>`).
            environ: The environment to read; None reads `os.environ`.
        """
        self._user = user
        self._password_env = password_env
        self._cookie_file = cookie_file
        self._environ = environ
        self._cookie: BasicCredentials | None = None

    async def get(self, *, refresh: bool = False) -> BasicCredentials:
        """Return the credentials; `refresh` re-reads a cookie file.

        Raises:
            CredentialsError: the environment variable is unset or the cookie file is
                missing, unreadable or malformed.
        """
        if self._cookie_file is not None:
            if self._cookie is None or refresh:
                self._cookie = await asyncio.to_thread(_read_cookie, self._cookie_file)
            return self._cookie
        environ = os.environ if self._environ is None else self._environ
        password = environ.get(self._password_env or "")
        if password is None:
            raise CredentialsError(
                f"environment variable {self._password_env} is not set; export the node's RPC password in it"
            )
        return BasicCredentials(self._user or "", password)


def _read_cookie(path: Path) -> BasicCredentials:
    """Read `user:password` from a cookie file. Blocking."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise CredentialsError(
            f"cookie file {path} not found; check auth.cookie_file and that the node is running"
        ) from err
    except OSError as err:
        raise CredentialsError(f"cannot read cookie file {path}: {err.strerror}") from err
    user, separator, password = text.partition(":")
    if not separator or not user:
        raise CredentialsError(f"cookie file {path} is not in the form user:password")
    return BasicCredentials(user, password)
