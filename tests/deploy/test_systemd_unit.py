"""`deploy/systemd/atlas-daemon.service`: checked by `systemd-analyze verify` and for its sandboxing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "atlas-daemon.service"
INSTALLED_ATLAS = "/opt/atlas/venv/bin/atlas"


def _directives() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (Debian package systemd)")
def test_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` reports nothing once ExecStart names an existing `atlas`."""
    atlas = Path(sys.executable).with_name("atlas")
    if not atlas.exists():
        pytest.skip(f"no atlas console script next to {sys.executable}; run `pip install -e .`")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED_ATLAS, str(atlas)), encoding="utf-8")

    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_unit_sandboxing() -> None:
    """The unit locks the file system down to the data directory and drops privileges."""
    values = _directives()

    assert values["ProtectSystem"] == ["strict"]
    assert values["ReadWritePaths"] == ["/var/lib/atlas"]
    assert values["NoNewPrivileges"] == ["yes"]
    assert values["PrivateTmp"] == ["yes"]
    assert values["CapabilityBoundingSet"] == [""]
    assert values["User"] == ["atlas"]


def test_unit_reload_and_paths() -> None:
    """Reload sends SIGHUP, and ExecStart passes the config and the state directory."""
    values = _directives()

    assert values["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    [start] = values["ExecStart"]
    assert start.startswith(f"{INSTALLED_ATLAS} daemon ")
    assert "--config /etc/atlas/config.json" in start
    assert "--data-dir /var/lib/atlas" in start
    assert values["StateDirectory"] == ["atlas"]
