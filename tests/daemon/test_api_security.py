"""`atlas daemon` as a real subprocess: refused non-loopback bind, and the local token file."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import httpx

from atlas_tui.api_tokens import LOCAL_TOKEN_FILE
from atlas_tui.lockfile import LOCK_FILENAME
from tests.daemon.conftest import FAST_CONFIG, DaemonProcess, run_atlas


def _write_config(path: Path, data: dict[str, object]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_bind_flag_without_tokens_refused(tmp_path: Path) -> None:
    """`--bind 0.0.0.0` with no tokens exits 2 before opening anything, naming what to configure."""
    config = _write_config(tmp_path / "config.json", FAST_CONFIG)
    data_dir = tmp_path / "data"

    result = run_atlas("daemon", "--data-dir", str(data_dir), "--config", str(config), "--bind", "0.0.0.0", "--port", "0")

    assert result.returncode == 2, result.stderr
    assert "atlas daemon: api.bind: 0.0.0.0 is not a loopback address" in result.stderr
    assert "atlas api token create" in result.stderr
    assert "atlas daemon: api.allowed_hosts: empty" in result.stderr
    assert not (data_dir / LOCK_FILENAME).exists()


def test_config_bind_without_tokens_refused(tmp_path: Path) -> None:
    """`api.bind` in the config is checked the same way as the flag."""
    config = _write_config(tmp_path / "config.json", {**FAST_CONFIG, "api": {"bind": "::", "allowed_hosts": ["*"]}})

    result = run_atlas("daemon", "--data-dir", str(tmp_path / "data"), "--config", str(config), "--port", "0")

    assert result.returncode == 2, result.stderr
    assert "api.bind: :: is not a loopback address" in result.stderr
    assert "allowed_hosts" not in result.stderr


def test_local_token_file(start_daemon: Callable[..., DaemonProcess], tmp_path: Path) -> None:
    """The daemon writes a 0600 token file that the API accepts, and reuses it after a restart."""
    data_dir = tmp_path / "data"
    first = start_daemon(None, data_dir=data_dir)
    assert first.wait_for_log("daemon started"), first.log()
    path = data_dir / LOCAL_TOKEN_FILE
    url = f"http://127.0.0.1:{first.port()}/api/metrics"

    with_token = httpx.get(url, headers=first.headers(), timeout=5.0)
    without = httpx.get(url, timeout=5.0)
    token = path.read_text(encoding="utf-8")
    assert first.stop()[0] == 0

    second = start_daemon(None, data_dir=data_dir)
    assert second.wait_for_log("daemon started"), second.log()
    again = httpx.get(f"http://127.0.0.1:{second.port()}/api/metrics", headers=second.headers(), timeout=5.0)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert with_token.status_code == 200
    assert without.status_code == 401
    assert path.read_text(encoding="utf-8") == token
    assert again.status_code == 200
    assert token.strip() not in first.log() + second.log()
