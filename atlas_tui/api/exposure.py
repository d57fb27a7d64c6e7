"""Start-up checks of where and how the API listens, run before the daemon opens anything.

`run_daemon` calls `check_exposure` when the API is on. A listen address that is not
loopback is accepted only when the store contains at least one API token besides the
daemon's local one and `api.allowed_hosts` lists the host names clients use, because
a remote client needs both: a token of its own (the local token file stays on this
host) and a Host header the API accepts. The TLS certificate and key are loaded
once here, so a bad file fails the start with the config key to fix instead of
failing inside uvicorn. Every problem is reported at once as a `ConfigError`, which
`atlas daemon` turns into exit code 2.
"""

from __future__ import annotations

import logging
import sqlite3
import ssl
from pathlib import Path

from atlas_tui.api_config import ApiConfig, is_loopback
from atlas_tui.api_tokens import count_remote_tokens
from atlas_tui.errors import ConfigError
from storage.errors import StorageError

__all__ = ["check_exposure"]

logger = logging.getLogger(__name__)

_SOURCE = "atlas daemon"


def check_exposure(settings: ApiConfig, bind: str, data_dir: Path) -> None:
    """Check that the API may listen on `bind` with `settings`, and log a warning for plain HTTP off loopback.

    Args:
        settings: The config's `api` section.
        bind: The effective listen address (`--bind`, else `api.bind`).
        data_dir: Data directory whose store contains the tokens.

    Raises:
        ConfigError: the TLS files do not load, or `bind` is not loopback and no
            token or no allowed host is configured. One problem per line.
    """
    problems = _tls_problems(settings)
    if not is_loopback(bind):
        problems += _remote_problems(settings, bind, data_dir)
        if not settings.tls and not problems:
            logger.warning(
                "api listens on a non-loopback address without TLS bind=%s; tokens cross the network "
                "in clear text, so set api.tls_cert and api.tls_key",
                bind,
            )
    if problems:
        raise ConfigError(_SOURCE, problems)


def _tls_problems(settings: ApiConfig) -> list[str]:
    if settings.tls_cert is None or settings.tls_key is None:
        return []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return [
            f"api.tls_cert, api.tls_key: cannot load {settings.tls_cert} with {settings.tls_key}: {reason}; "
            "give a readable PEM certificate and the PEM private key that belongs to it"
        ]
    return []


def _remote_problems(settings: ApiConfig, bind: str, data_dir: Path) -> list[str]:
    problems = []
    try:
        tokens = count_remote_tokens(data_dir)
    except (StorageError, sqlite3.Error) as err:
        return [f"api.bind: {bind} is not a loopback address, and the API tokens cannot be counted: {err}"]
    if tokens == 0:
        problems.append(
            f"api.bind: {bind} is not a loopback address, but no API token exists besides the local one; "
            f"create one with `atlas api token create --data-dir {data_dir} --name NAME --scope read`, "
            "or listen on 127.0.0.1 (--bind 127.0.0.1)"
        )
    if not settings.allowed_hosts:
        problems.append(
            f"api.allowed_hosts: empty while api.bind is {bind}, so requests naming this host would get 400; "
            'list the names or addresses clients connect to, such as ["atlas.example.org", "192.0.2.10"], '
            'or ["*"] to accept any'
        )
    return problems
