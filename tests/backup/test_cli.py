"""`backup-manager` and `atlas backup`: actions, config, passphrase sources and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_tui import cli
from atlas_tui.backup.lock import RepositoryLock
from atlas_tui.cli_backup import EXIT_FAILURE, EXIT_LOCKED, EXIT_OK, EXIT_USAGE, main

from tests.backup.conftest import CLI_PASSPHRASE, NON_UTF8_NAME, build_tree, restored_root, run_cli, tree_state

pytestmark = pytest.mark.usefixtures("cli_environment")


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "repo"
    code, _out, err = run_cli(capsys, "--repo", str(path), "init", "--chunk-avg-size", "4096")
    assert code == EXIT_OK, err
    return path


def test_backup_list_restore(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A backup listed with --json restores by id and by --latest to the same tree."""
    source = build_tree(tmp_path / "src")

    backup_code, backup_out, _ = run_cli(capsys, "backup", "--repo", str(repo), "--path", str(source))
    list_code, list_out, _ = run_cli(capsys, "list", "--repo", str(repo), "--json")
    snapshot_id = json.loads(list_out)[0]["id"]
    by_id = run_cli(capsys, "restore", "--repo", str(repo), "--id", snapshot_id, "--target", str(tmp_path / "a"))
    latest = run_cli(capsys, "restore", "--repo", str(repo), "--latest", "--target", str(tmp_path / "b"))

    assert backup_code == EXIT_OK
    assert backup_out.startswith(f"{snapshot_id}: ok")
    assert list_code == EXIT_OK
    assert snapshot_id.startswith("backup_")
    assert snapshot_id.endswith("_manual")
    assert by_id[0] == latest[0] == EXIT_OK
    assert tree_state(restored_root(tmp_path / "a", source)) == tree_state(source)
    assert tree_state(restored_root(tmp_path / "b", source)) == tree_state(source)
    assert NON_UTF8_NAME in tree_state(restored_root(tmp_path / "b", source))


def test_atlas_backup_same_command(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`atlas backup ACTION` runs the same actions as `backup-manager ACTION`."""
    source = build_tree(tmp_path / "src")

    code = cli.main(["backup", "backup", "--repo", str(repo), "--path", str(source), "--trigger", "test"])
    capsys.readouterr()
    list_code = cli.main(["backup", "list", "--repo", str(repo), "--json"])
    listing = json.loads(capsys.readouterr().out)

    assert code == EXIT_OK
    assert list_code == EXIT_OK
    assert listing[0]["trigger"] == "test"


def test_verify_and_integrity_exit_codes(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify and integrity exit 0 on an intact repository, integrity 1 with the pack named after damage."""
    run_cli(capsys, "backup", "--repo", str(repo), "--path", str(build_tree(tmp_path / "src")))
    snapshot_id = json.loads(run_cli(capsys, "list", "--repo", str(repo), "--json")[1])[0]["id"]

    verify_code, _, _ = run_cli(capsys, "verify", "--repo", str(repo), "--id", snapshot_id)
    intact_code, _, _ = run_cli(capsys, "integrity", "--repo", str(repo), "--id", snapshot_id)
    pack = next(path for path in (repo / "data").rglob("*") if path.is_file())
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    damaged_code, damaged_out, _ = run_cli(capsys, "integrity", "--repo", str(repo), "--id", snapshot_id)

    assert verify_code == EXIT_OK
    assert intact_code == EXIT_OK
    assert damaged_code == EXIT_FAILURE
    assert f"damaged pack {pack.name}" in damaged_out
    assert f"snapshots affected: {snapshot_id}" in damaged_out


def test_wrong_passphrase_exit(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong passphrase exits 1 with a message naming the cause."""
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", "wrong")

    code, _out, err = run_cli(capsys, "list", "--repo", str(repo))

    assert code == EXIT_FAILURE
    assert "wrong passphrase for the backup repository" in err


def test_passphrase_file_and_missing(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--passphrase-file opens the repository; with no source at all the error names the variable."""
    monkeypatch.delenv("ATLAS_BACKUP_PASSPHRASE")
    secret = tmp_path / "passphrase"
    secret.write_text(CLI_PASSPHRASE + "\n")

    file_code, _, _ = run_cli(capsys, "list", "--repo", str(repo), "--passphrase-file", str(secret))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    missing_code, _, missing_err = run_cli(capsys, "list", "--repo", str(repo))

    assert file_code == EXIT_OK
    assert missing_code == EXIT_FAILURE
    assert "ATLAS_BACKUP_PASSPHRASE" in missing_err


def test_locked_exit_code(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A backup while a live process holds the lock exits 4; unlock then refuses too."""
    source = build_tree(tmp_path / "src")

    with RepositoryLock(repo, now=0):
        code, _out, err = run_cli(capsys, "backup", "--repo", str(repo), "--path", str(source))
        unlock_code, _, _ = run_cli(capsys, "unlock", "--repo", str(repo))

    assert code == EXIT_LOCKED
    assert unlock_code == EXIT_LOCKED
    assert f"pid {os.getpid()}" in err


def test_config_sets_and_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --path and --repo the config's repository and sets are used, higher priority first."""
    first = build_tree(tmp_path / "first")
    second = tmp_path / "second"
    second.mkdir()
    (second / "x").write_text("x")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "backup": {
            "repository": str(tmp_path / "configured-repo"),
            "sets": [
                {"name": "low", "paths": [str(second)], "priority": 1},
                {"name": "high", "paths": [str(first)], "priority": 10},
            ],
        }
    }))

    init_code, _, _ = run_cli(capsys, "--config", str(config), "init")
    code, out, _ = run_cli(capsys, "--config", str(config), "backup", "--json")

    result = json.loads(out)
    assert init_code == EXIT_OK
    assert code == EXIT_OK
    assert [item["name"] for item in result["sets"]] == ["high", "low"]
    assert (tmp_path / "configured-repo" / "config").is_file()


def test_invalid_backup_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A relative set path or encryption turned off is a config error with exit 2."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"backup": {"encryption_enabled": False, "sets": [{"name": "a", "paths": ["rel"]}]}}))

    code, _out, err = run_cli(capsys, "--config", str(config), "list")

    assert code == EXIT_USAGE
    assert "backup.encryption_enabled" in err
    assert "backup paths must be absolute, got 'rel'" in err


def test_init_twice_rejected(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`init` on an existing repository exits 1 and leaves it alone."""
    code, _out, err = run_cli(capsys, "init", "--repo", str(repo))

    assert code == EXIT_FAILURE
    assert "already exists" in err


def test_console_script_installed(repo: Path) -> None:
    """The installed `backup-manager` script runs the same command."""
    script = Path(sys.executable).parent / "backup-manager"

    completed = subprocess.run(
        [str(script), "list", "--repo", str(repo), "--json"], capture_output=True, text=True, timeout=60, check=False
    )

    assert completed.returncode == EXIT_OK, completed.stderr
    assert json.loads(completed.stdout) == []


def test_restore_replaces_file_by_directory(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file in the target where the snapshot has a directory is replaced by the directory and its files."""
    source = build_tree(tmp_path / "src")
    run_cli(capsys, "backup", "--repo", str(repo), "--path", str(source))
    target = tmp_path / "out"
    blocked = restored_root(target, source) / "docs"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file, not a directory")

    code, _out, err = run_cli(capsys, "restore", "--repo", str(repo), "--latest", "--target", str(target))

    assert code == EXIT_OK, err
    assert blocked.is_dir()
    assert sorted(os.listdir(blocked)) == sorted(os.listdir(source / "docs"))


def test_terminal_progress_line() -> None:
    """The progress line shows entries, MiB read and the rate, and redraws at most every 0.25 s."""
    from io import StringIO

    from atlas_tui.cli_backup import _TerminalProgress

    times = iter([0.0, 1.0, 1.1, 2.0])
    stream = StringIO()
    progress = _TerminalProgress(stream, clock=lambda: next(times))

    progress(3, 10 * 1024**2)
    progress(4, 11 * 1024**2)
    progress(5, 20 * 1024**2)
    progress.finish()

    assert stream.getvalue() == "\r3 entries, 10.0 MiB read, 10.0 MiB/s \r5 entries, 20.0 MiB read, 10.0 MiB/s \n"


@pytest.mark.parametrize("target", ["", "  "])
def test_restore_empty_target_rejected(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str) -> None:
    """An empty --target exits 2 before restoring anything, instead of restoring into the working directory."""
    run_cli(capsys, "backup", "--repo", str(repo), "--path", str(build_tree(tmp_path / "src")))

    with pytest.raises(SystemExit) as exited:
        main(["restore", "--repo", str(repo), "--latest", "--target", target])

    assert exited.value.code == EXIT_USAGE
    assert "empty restore target" in capsys.readouterr().err
