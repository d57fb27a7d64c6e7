"""Error messages of `backup-manager` name the value at fault and what to do next."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from atlas_tui.backup.repository import Repository
from atlas_tui.cli_backup import EXIT_FAILURE, EXIT_USAGE

from tests.backup.conftest import CLI_PASSPHRASE, run_cli

pytestmark = pytest.mark.usefixtures("cli_environment")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty repository opened by `CLI_PASSPHRASE`, with a cheap scrypt cost."""
    path = tmp_path / "repo"
    Repository.init(path, CLI_PASSPHRASE.encode(), now=time.time(), scrypt_n=2**10)
    return path


@pytest.mark.parametrize("content", [b'{"id": 5, "created": "x"}', b'{"version": 1, "id": "ab'])
def test_invalid_repository_config(repo: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    """An invalid config file is named with the fix, without pydantic's banner or links."""
    (repo / "config").write_bytes(content)

    code, _out, err = run_cli(capsys, "list", "--repo", str(repo))

    assert code == EXIT_FAILURE
    assert f"the repository config file {repo / 'config'} is invalid" in err
    assert "restore it from another copy of this repository" in err
    assert "errors.pydantic.dev" not in err
    assert "validation error for" not in err


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_no_key_file(repo: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    """An empty or missing keys directory is reported as such, not as a wrong passphrase."""
    if damage == "empty":
        for path in (repo / "keys").iterdir():
            path.unlink()
    else:
        shutil.rmtree(repo / "keys")

    code, _out, err = run_cli(capsys, "status", "--repo", str(repo))

    assert code == EXIT_FAILURE
    assert f"no key file in {repo / 'keys'}" in err
    assert "restore the keys directory from another copy" in err
    assert "wrong passphrase" not in err


def test_wrong_passphrase_names_source(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong passphrase names the flag file, the environment variable or the config file it came from."""
    wrong = tmp_path / "wrong-passphrase"
    wrong.write_text("wrong\n")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"backup": {"passphrase_env": "OTHER_PASSPHRASE", "passphrase_file": str(wrong)}}))

    flag = run_cli(capsys, "list", "--repo", str(repo), "--passphrase-file", str(wrong))
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", "wrong")
    environment = run_cli(capsys, "list", "--repo", str(repo))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    configured = run_cli(capsys, "list", "--repo", str(repo), "--config", str(config))

    assert flag[0] == environment[0] == configured[0] == EXIT_FAILURE
    assert f"the passphrase from --passphrase-file {wrong};" in flag[2]
    assert "the passphrase from the environment variable ATLAS_BACKUP_PASSPHRASE (backup.passphrase_env);" in (
        environment[2]
    )
    assert f"the passphrase from backup.passphrase_file {wrong};" in configured[2]
    for _code, _out, err in (flag, environment, configured):
        assert "wrong\n" not in err


@pytest.mark.parametrize("action", [["key", "rotate", "--yes"], ["schedule"]])
def test_wrong_passphrase_source_rotate_schedule(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], action: list[str]
) -> None:
    """`key rotate` and `schedule` name the passphrase source too."""
    wrong = tmp_path / "wrong-passphrase"
    wrong.write_text("wrong\n")

    code, _out, err = run_cli(capsys, *action, "--repo", str(repo), "--passphrase-file", str(wrong))

    assert code == EXIT_FAILURE
    assert f"the passphrase from --passphrase-file {wrong};" in err


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
