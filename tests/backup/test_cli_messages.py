"""Error messages of `backup-manager` name the value at fault and what to do next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas_tui.cli_backup import EXIT_FAILURE, EXIT_USAGE

from tests.backup.conftest import run_cli

pytestmark = pytest.mark.usefixtures("cli_environment")


def test_relative_repository_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A relative backup.repository is a config error naming the value; a path under ~ is accepted."""
    relative = tmp_path / "relative.json"
    relative.write_text(json.dumps({"backup": {"repository": "backups/atlas"}}))
    home = tmp_path / "home.json"
    home.write_text(json.dumps({"backup": {"repository": "~/no-repository-here"}}))

    code, _out, err = run_cli(capsys, "list", "--config", str(relative))
    home_code, _home_out, home_err = run_cli(capsys, "list", "--config", str(home))

    assert code == EXIT_USAGE
    assert "backup.repository: the repository must be an absolute path, got 'backups/atlas'" in err
    assert "/var/backups/atlas" in err
    assert home_code == EXIT_FAILURE
    assert "no backup repository at" in home_err
