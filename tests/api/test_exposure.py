"""`check_exposure`: when the daemon may listen beyond loopback, and TLS files that must load."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_tui.api.exposure import check_exposure
from atlas_tui.api_config import ApiConfig
from atlas_tui.api_tokens import ensure_local_token, revoke
from atlas_tui.errors import ConfigError
from storage.db import open_store
from tests.api_tokens import issue_token

REMOTE = ApiConfig(allowed_hosts=["atlas.example.org"])


def test_loopback_needs_nothing(tmp_path: Path) -> None:
    """127.0.0.1 and ::1 are fine without a store, tokens or allowed hosts."""
    check_exposure(ApiConfig(), "127.0.0.1", tmp_path / "none")
    check_exposure(ApiConfig(bind="::1"), "::1", tmp_path / "none")


def test_remote_without_tokens_rejected(tmp_path: Path) -> None:
    """0.0.0.0 without tokens or allowed hosts is rejected with both fixes named."""
    with pytest.raises(ConfigError) as caught:
        check_exposure(ApiConfig(), "0.0.0.0", tmp_path / "none")

    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("api.bind: 0.0.0.0 is not a loopback address")
    assert "atlas api token create" in problems[0]
    assert problems[1].startswith("api.allowed_hosts: empty")


def test_local_token_not_enough(tmp_path: Path) -> None:
    """The daemon's local token does not count, because it never leaves this host."""
    conn = open_store(tmp_path)
    try:
        ensure_local_token(conn, tmp_path, time.time())
    finally:
        conn.close()

    with pytest.raises(ConfigError) as caught:
        check_exposure(REMOTE, "192.0.2.10", tmp_path)

    assert [problem.split(":")[0] for problem in caught.value.problems] == ["api.bind"]


def test_remote_with_token_accepted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A token and an allowed host make a non-loopback bind acceptable, with a warning for plain HTTP."""
    issue_token(tmp_path, "read")
    caplog.set_level(logging.WARNING)

    check_exposure(REMOTE, "0.0.0.0", tmp_path)

    assert "without TLS" in caplog.text


def test_revoked_token_not_counted(tmp_path: Path, api_token: Callable[..., str]) -> None:
    """Only active tokens count: after revoking the only one, the bind is rejected again."""
    api_token(tmp_path, "read", name="remote")
    conn = open_store(tmp_path)
    try:
        revoke(conn, "remote", time.time())
    finally:
        conn.close()

    with pytest.raises(ConfigError):
        check_exposure(REMOTE, "0.0.0.0", tmp_path)


def test_bad_tls_files_rejected(tmp_path: Path) -> None:
    """A certificate that is not PEM fails the check naming both config keys, on loopback too."""
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate", encoding="utf-8")
    settings = ApiConfig(tls_cert=cert, tls_key=tmp_path / "missing.pem")

    with pytest.raises(ConfigError) as caught:
        check_exposure(settings, "127.0.0.1", tmp_path)

    assert caught.value.problems[0].startswith("api.tls_cert, api.tls_key: cannot load")
