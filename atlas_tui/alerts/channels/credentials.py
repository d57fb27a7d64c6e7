"""Secrets of notification channels, read at send time, and URL redaction for logs.

The config file names where a secret lives (`password_env`, `webhook_url_file`,
`secret_env`…), never the secret itself. Senders call `resolve_secret` just before
each delivery, so a rotated secret is picked up without a restart. Invariants: no
function here logs, and no error message contains the secret's value. Full webhook
URLs may carry tokens, so logs and messages show them through `redact_url` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from atlas_tui.alerts.channels.errors import SecretUnavailableError

__all__ = ["redact_url", "resolve_secret"]


def resolve_secret(
    channel: str,
    *,
    env: str | None,
    file: str | None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Read a channel's secret from the environment variable `env` or the file `file`.

    Surrounding whitespace is stripped, so a file ending in a newline works.

    Args:
        channel: Channel name, used in error messages.
        env: Name of the environment variable, or None.
        file: Path of the file, or None. `~` is expanded.
        environ: Environment to read instead of `os.environ` (tests pass a dict).

    Returns:
        The secret, or None when neither `env` nor `file` is configured.

    Raises:
        SecretUnavailableError: the variable is unset or empty, or the file is
            missing, unreadable or empty.
    """
    if env:
        return _from_environment(channel, env, os.environ if environ is None else environ)
    if file:
        return _from_file(channel, file)
    return None


def redact_url(url: str) -> str:
    """Return only the scheme, host and port of `url`, dropping path, query and user info."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not host:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _from_environment(channel: str, name: str, environ: Mapping[str, str]) -> str:
    value = environ.get(name)
    if value is None:
        raise SecretUnavailableError(channel, f"environment variable {name} is not set")
    value = value.strip()
    if not value:
        raise SecretUnavailableError(channel, f"environment variable {name} is empty")
    return value


def _from_file(channel: str, file: str) -> str:
    path = Path(file).expanduser()
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise SecretUnavailableError(channel, f"secret file {path} not found") from err
    except UnicodeDecodeError:
        # Chaining would put a byte of the secret into the traceback.
        raise SecretUnavailableError(channel, f"secret file {path} is not UTF-8 text") from None
    except OSError as err:
        raise SecretUnavailableError(channel, f"cannot read secret file {path}: {err.strerror}") from err
    if not value:
        raise SecretUnavailableError(channel, f"secret file {path} is empty")
    return value
