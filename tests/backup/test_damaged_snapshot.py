"""A damaged snapshot file: list, status, integrity and cleanup keep working around it, and delete removes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas_tui.cli_backup import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL

from tests.backup.conftest import run_cli, two_snapshot_repository

pytestmark = pytest.mark.usefixtures("cli_environment")


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:50])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(params=[truncate, flip_byte], ids=["truncated", "flipped"])
def damaged_repo(request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str, str]:
    """A repository with two snapshots of `src`, the first of them damaged; returns the path and both ids.

    old.bin exists only in the first snapshot, so its chunks are used by the damaged one alone.
    """
    path = tmp_path / "repo"
    two_snapshot_repository(path, tmp_path / "src", capsys)
    first, second = sorted(item.name for item in (path / "snapshots").iterdir())
    request.param(path / "snapshots" / first)
    return path, first, second


def test_list_marks_damaged(damaged_repo: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """list shows the readable snapshot and the damaged one, in text and JSON, and exits 3."""
    repo, first, second = damaged_repo

    code, out, err = run_cli(capsys, "list", "--repo", str(repo))
    json_code, json_out, _ = run_cli(capsys, "list", "--repo", str(repo), "--json")

    assert code == EXIT_PARTIAL
    lines = out.splitlines()
    assert lines[0].startswith(f"{first}  damaged: snapshot {first}")
    assert lines[1].startswith(f"{second}  ")
    assert f"delete --id {first}" in err
    assert json_code == EXIT_PARTIAL
    listing = json.loads(json_out)
    assert [item["id"] for item in listing] == [first, second]
    assert listing[0]["status"] == "damaged"
    assert first in listing[0]["error"]
    assert listing[1]["status"] == "ok"


def test_status_skips_damaged(damaged_repo: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """status reports the sets from the readable snapshot, names the damaged one and exits 3."""
    repo, first, second = damaged_repo

    code, out, _ = run_cli(capsys, "status", "--repo", str(repo), "--json")
    text_code, text, _ = run_cli(capsys, "status", "--repo", str(repo))

    assert code == text_code == EXIT_PARTIAL
    status = json.loads(out)
    assert status["snapshots"] == 2
    assert status["sets"][0]["last_run"] == second
    assert [item["id"] for item in status["damaged_snapshots"]] == [first]
    assert f"damaged snapshot {first}" in text
    assert f"delete --id {first}" in text


def test_integrity_reports_damaged(damaged_repo: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """integrity checks the readable snapshot and reports the damaged file as a finding, by id too."""
    repo, first, second = damaged_repo

    code, out, _ = run_cli(capsys, "integrity", "--repo", str(repo))
    json_code, json_out, _ = run_cli(capsys, "integrity", "--repo", str(repo), "--json")
    by_id_code, by_id_out, _ = run_cli(capsys, "integrity", "--repo", str(repo), "--id", first)

    assert code == json_code == by_id_code == EXIT_FAILURE
    assert f"damaged snapshot {first}: snapshot {first}" in out
    assert f"delete --id {first}" in out
    result = json.loads(json_out)
    assert result["chunks"] > 0
    assert result["damaged"] == []
    assert [item["id"] for item in result["damaged_snapshots"]] == [first]
    assert f"damaged snapshot {first}" in by_id_out


def test_cleanup_rejected_changes_nothing(
    damaged_repo: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cleanup deletes no file while a snapshot is unreadable, names it and the fix, and reports retention."""
    repo, first, second = damaged_repo
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"backup": {"retention_period": "1ms"}}))
    before = sorted(str(path.relative_to(repo)) for path in repo.rglob("*") if path.is_file())

    code, out, err = run_cli(capsys, "cleanup", "--repo", str(repo), "--config", str(config))
    dry_code, dry_out, _ = run_cli(capsys, "cleanup", "--repo", str(repo), "--config", str(config), "--dry-run", "--json")

    after = sorted(str(path.relative_to(repo)) for path in repo.rglob("*") if path.is_file())
    assert code == dry_code == EXIT_FAILURE
    assert after == before
    assert f"snapshot {first} cannot be read" in err
    assert f"delete --id {first}" in err
    assert "retention would keep 1 readable snapshots and remove 0" in out
    plan = json.loads(dry_out)
    assert plan["kept_snapshots"] == {second: ["newest"]}
    assert plan["deleted_packs"] == []
    assert [item["id"] for item in plan["damaged_snapshots"]] == [first]


def test_delete_damaged_then_cleanup(damaged_repo: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """delete --id removes the damaged snapshot; then list, cleanup and integrity succeed."""
    repo, first, second = damaged_repo

    deleted = run_cli(capsys, "delete", "--repo", str(repo), "--id", first)
    listed = run_cli(capsys, "list", "--repo", str(repo), "--json")
    cleaned = run_cli(capsys, "cleanup", "--repo", str(repo), "--json")
    checked = run_cli(capsys, "integrity", "--repo", str(repo))

    assert deleted[0] == EXIT_OK
    assert listed[0] == EXIT_OK
    assert [item["id"] for item in json.loads(listed[1])] == [second]
    assert cleaned[0] == EXIT_OK
    assert json.loads(cleaned[1])["deleted_packs"] + json.loads(cleaned[1])["rewritten_packs"]
    assert checked[0] == EXIT_OK


def test_restore_at_passes_over_damaged(
    damaged_repo: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`restore --at` picks the newest readable snapshot and warns about the damaged one."""
    path, first, second = damaged_repo

    code, out, err = run_cli(
        capsys, "restore", "--repo", str(path), "--at", "2100-01-01T00:00:00Z", "--target", str(tmp_path / "out")
    )

    assert code == EXIT_OK, err
    assert f"restored {second} into" in out
    assert f"damaged snapshot id={first}" in err


def test_restore_latest_damaged_names_choices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`restore --latest` with the newest snapshot damaged fails with a message on how to pick another."""
    path = tmp_path / "repo"
    two_snapshot_repository(path, tmp_path / "src", capsys)
    _first, second = sorted(item.name for item in (path / "snapshots").iterdir())
    truncate(path / "snapshots" / second)

    code, _out, err = run_cli(capsys, "restore", "--repo", str(path), "--latest", "--target", str(tmp_path / "out"))

    assert code == EXIT_FAILURE
    assert f"snapshot {second}" in err
    assert "the newest snapshot cannot be read, so choose another with --id or --at" in err
