"""`backup-manager` restore --at, delete, cleanup, status and key actions."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pytest

from atlas_tui.cli_backup import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main

from tests.backup.conftest import CLI_PASSPHRASE, restored_root, run_cli, tree_state, two_snapshot_repository

pytestmark = pytest.mark.usefixtures("cli_environment")


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A repository with two snapshots of `src`; old.bin exists only in the first."""
    path = tmp_path / "repo"
    two_snapshot_repository(path, tmp_path / "src", capsys)
    return path


def snapshots(capsys: pytest.CaptureFixture[str], repo: Path) -> list[dict[str, object]]:
    code, out, _ = run_cli(capsys, "list", "--repo", str(repo), "--json")
    assert code == EXIT_OK
    return json.loads(out)


def test_restore_at(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--at in unix seconds picks the snapshot taken then; an ISO time in the future picks the newest."""
    first, second = snapshots(capsys, repo)

    at_first = repr(first["time"])
    by_seconds = run_cli(capsys, "restore", "--repo", str(repo), "--at", at_first, "--target", str(tmp_path / "a"))
    by_iso = run_cli(
        capsys, "restore", "--repo", str(repo), "--at", "2999-01-01T00:00:00+00:00", "--target", str(tmp_path / "b")
    )

    assert by_seconds[0] == by_iso[0] == EXIT_OK
    assert by_seconds[1].startswith(f"restored {first['id']} ")
    assert by_iso[1].startswith(f"restored {second['id']} ")
    assert (restored_root(tmp_path / "a", tmp_path / "src") / "old.bin").is_file()
    assert tree_state(restored_root(tmp_path / "b", tmp_path / "src")) == tree_state(tmp_path / "src")


@pytest.mark.parametrize("form", ["iso", "unix"])
def test_restore_at_whole_second(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    """--at with the snapshot time cut to whole seconds, as list and status show it, picks that snapshot."""
    _first, second = snapshots(capsys, repo)
    seconds = math.floor(float(second["time"]))
    displayed_time = datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")
    at = displayed_time if form == "iso" else str(seconds)

    code, out, err = run_cli(capsys, "restore", "--repo", str(repo), "--at", at, "--target", str(tmp_path / "a"))

    assert second["time"] != seconds
    assert code == EXIT_OK, err
    assert out.startswith(f"restored {second['id']} ")


def test_list_text_shows_time(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """list text prints each snapshot's time in ISO 8601 UTC, whole seconds, after the id."""
    first, second = snapshots(capsys, repo)

    code, out, _ = run_cli(capsys, "list", "--repo", str(repo))

    assert code == EXIT_OK
    for line, snapshot in zip(out.splitlines(), (first, second), strict=True):
        displayed_time = datetime.fromtimestamp(math.floor(float(snapshot["time"])), tz=timezone.utc).isoformat(timespec="seconds")
        assert line.startswith(f"{snapshot['id']}  {displayed_time}  ok")


def test_restore_at_too_early(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A time before the oldest snapshot exits 1 naming that snapshot."""
    first, _second = snapshots(capsys, repo)

    code, _out, err = run_cli(
        capsys, "restore", "--repo", str(repo), "--at", "2000-01-01T00:00:00Z", "--target", str(tmp_path / "a")
    )

    assert code == EXIT_FAILURE
    assert "no successful snapshot at or before 2000-01-01T00:00:00+00:00" in err
    assert f"the oldest is {first['id']}" in err


@pytest.mark.parametrize("value", ["2026-01-01T00:00:00", "yesterday", "nan"])
def test_restore_at_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    """A time without an offset or that is not a time is a usage error naming the value."""
    with pytest.raises(SystemExit) as stop:
        main(["restore", "--repo", str(tmp_path / "repo"), "--at", value, "--target", str(tmp_path / "a")])

    assert stop.value.code == EXIT_USAGE
    assert repr(value) in capsys.readouterr().err


def test_delete_then_cleanup(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """delete drops the snapshot from the list; cleanup --dry-run plans, cleanup frees bytes."""
    first, second = snapshots(capsys, repo)

    deleted = run_cli(capsys, "delete", "--repo", str(repo), "--id", str(first["id"]))
    planned = run_cli(capsys, "cleanup", "--repo", str(repo), "--dry-run", "--json")
    done = run_cli(capsys, "cleanup", "--repo", str(repo), "--json")
    again = run_cli(capsys, "cleanup", "--repo", str(repo))

    assert deleted[0] == EXIT_OK
    assert [item["id"] for item in snapshots(capsys, repo)] == [second["id"]]
    assert planned[0] == done[0] == again[0] == EXIT_OK
    plan, result = json.loads(planned[1]), json.loads(done[1])
    assert plan["dry_run"] is True
    assert plan["deleted_packs"] + plan["rewritten_packs"]
    assert result["deleted_packs"] == plan["deleted_packs"]
    assert result["freed_bytes"] > 0
    assert "0 packs deleted, 0 rewritten" in again[1]
    assert run_cli(capsys, "integrity", "--repo", str(repo))[0] == EXIT_OK


def test_delete_unknown(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Deleting an unknown id exits 1 naming it."""
    code, _out, err = run_cli(capsys, "delete", "--repo", str(repo), "--id", "backup_1_manual")

    assert code == EXIT_FAILURE
    assert "no snapshot 'backup_1_manual'" in err


def test_cleanup_uses_config_retention(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """retention_period and keep_daily from the config decide what cleanup keeps."""
    first, second = snapshots(capsys, repo)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"backup": {"retention_period": "1ms", "keep_daily": 1}}))

    code, out, _ = run_cli(capsys, "cleanup", "--repo", str(repo), "--config", str(config), "--json")

    assert code == EXIT_OK
    result = json.loads(out)
    assert result["removed_snapshots"] == [first["id"]]
    assert result["kept_snapshots"] == {second["id"]: ["daily", "newest"]}


def test_status(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status --json reports the set's last run, the snapshot count and the size; text mentions the set."""
    _first, second = snapshots(capsys, repo)

    code, out, _ = run_cli(capsys, "status", "--repo", str(repo), "--json")
    text = run_cli(capsys, "status", "--repo", str(repo))[1]

    assert code == EXIT_OK
    status = json.loads(out)
    assert status["snapshots"] == 2
    assert status["size_bytes"] > 0
    assert status["sets"][0]["name"] == "paths"
    assert status["sets"][0]["last_run"] == second["id"]
    assert status["sets"][0]["last_status"] == "ok"
    assert f"paths: last run {second['id']}" in text


def test_keys(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """key add, list and remove; both passphrases open the repository until one key is removed."""
    new_passphrase = tmp_path / "new-passphrase"
    new_passphrase.write_text("second passphrase\n")

    added = run_cli(capsys, "key", "add", "--repo", str(repo), "--new-passphrase-file", str(new_passphrase), "--json")
    listing = json.loads(run_cli(capsys, "key", "list", "--repo", str(repo), "--json")[1])
    first_key = next(item["id"] for item in listing if item["current"])
    in_use = run_cli(capsys, "key", "remove", first_key, "--repo", str(repo))
    removed = run_cli(capsys, "key", "remove", first_key, "--repo", str(repo), "--passphrase-file", str(new_passphrase))
    old_passphrase = run_cli(capsys, "list", "--repo", str(repo))

    assert added[0] == EXIT_OK
    assert len(listing) == 2
    assert json.loads(added[1])["added"] in [item["id"] for item in listing]
    assert in_use[0] == EXIT_FAILURE
    assert "opened the repository" in in_use[2]
    assert removed[0] == EXIT_OK
    assert old_passphrase[0] == EXIT_FAILURE
    assert "wrong passphrase" in old_passphrase[2]


def test_key_add_without_passphrase(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """key add without a new passphrase source fails and names the flag and the variable."""
    code, _out, err = run_cli(capsys, "key", "add", "--repo", str(repo))

    assert code == EXIT_FAILURE
    assert "--new-passphrase-file" in err
    assert "ATLAS_BACKUP_NEW_PASSPHRASE" in err


def test_key_add_same_passphrase_rejected(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """key add with a passphrase that already opens a key fails, names that key and adds nothing."""
    same = tmp_path / "same-passphrase"
    same.write_text(CLI_PASSPHRASE + "\n")
    before = json.loads(run_cli(capsys, "key", "list", "--repo", str(repo), "--json")[1])

    code, _out, err = run_cli(capsys, "key", "add", "--repo", str(repo), "--new-passphrase-file", str(same))
    after = json.loads(run_cli(capsys, "key", "list", "--repo", str(repo), "--json")[1])

    assert code == EXIT_FAILURE
    assert f"the new passphrase already opens key {before[0]['id']}" in err
    assert "choose another passphrase" in err
    assert after == before
