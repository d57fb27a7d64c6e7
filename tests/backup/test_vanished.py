"""Paths deleted between the walk and the read are counted as vanished, not as failures."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import pytest

from atlas_tui.backup.jobs import RunRecorder, backup_job
from atlas_tui.backup.models import BackupRequest, BackupSetSpec
from atlas_tui.backup.repository import Repository
from atlas_tui.cli_backup import EXIT_PARTIAL, _print_backup
from storage.backup_runs import recent_runs, run_log
from storage.db import DB_FILENAME, connect

from tests.backup.conftest import PASSPHRASE, run_cli


def churning_tree(root: Path) -> Path:
    """Write files larger than the small-file limit of `SMALL_CHUNKS`, so none is read ahead of the others."""
    (root / "z-dir" / "sub").mkdir(parents=True)
    (root / "a-first.bin").write_bytes(b"a" * 4096)
    (root / "m-gone.bin").write_bytes(b"m" * 4096)
    (root / "z-dir" / "inner.bin").write_bytes(b"i" * 4096)
    (root / "z-dir" / "sub" / "deep.bin").write_bytes(b"d" * 4096)
    return root


def test_deleted_paths_vanish(repository: Repository, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file and a directory deleted while the first file is read leave the run `ok` with five vanished paths."""
    source = churning_tree(tmp_path / "src")
    deleted: list[bool] = []

    def delete_during_read(entries: int, read: int) -> None:
        if not deleted:
            (source / "m-gone.bin").unlink()
            shutil.rmtree(source / "z-dir")
            deleted.append(True)

    recorder = RunRecorder.open(tmp_path / "data", repository=repository.path)
    request = BackupRequest(sets=[BackupSetSpec(name="churn", paths=[source])], now=time.time())
    try:
        with caplog.at_level("INFO", logger="atlas_tui.backup.archiver"):
            result = backup_job(repository, request, recorder, progress=delete_during_read)
    finally:
        recorder.close()

    assert deleted
    assert result.status == "ok"
    assert result.skipped == []
    assert result.vanished == 5
    assert result.vanished_by_set == {"churn": 5}
    expected = {str(source / "m-gone.bin"), str(source / "z-dir"), str(source / "z-dir" / "inner.bin"),
            str(source / "z-dir" / "sub"), str(source / "z-dir" / "sub" / "deep.bin")}
    assert {item.path for item in result.vanished_paths} == expected
    assert {item.backup_set for item in result.vanished_paths} == {"churn"}
    assert f"backup path vanished before it was read backup_set=churn path={source / 'm-gone.bin'}" in caplog.text
    assert not [record for record in caplog.records if record.levelname == "WARNING"]

    conn = connect(tmp_path / "data" / DB_FILENAME)
    try:
        (row,) = recent_runs(conn, 10)
        lines = run_log(conn, [row.run_id], min_level="debug")[row.run_id]
    finally:
        conn.close()
    assert row.status == "ok"
    assert row.error is None
    messages = [line.message for line in lines]
    assert any(message.startswith("5 paths of set churn were deleted during the backup") for message in messages)
    assert f"vanished {source / 'm-gone.bin'}" in messages

    report = io.StringIO()
    _print_backup(result, report)
    assert "  5 paths were deleted during the backup and left out; this is no failure" in report.getvalue()
    assert "skipped" not in report.getvalue()


def test_vanished_paths_in_json(repository: Repository, tmp_path: Path) -> None:
    """The run result's JSON, which `backup --json` prints, carries the count and the list."""
    source = churning_tree(tmp_path / "src")

    def delete_during_read(entries: int, read: int) -> None:
        (source / "m-gone.bin").unlink(missing_ok=True)

    recorder = RunRecorder(None, repository=repository.path)
    request = BackupRequest(sets=[BackupSetSpec(name="churn", paths=[source])], now=time.time())
    result = backup_job(repository, request, recorder, progress=delete_during_read)
    document = json.loads(result.model_dump_json())

    assert document["status"] == "ok"
    assert document["vanished"] == 1
    assert document["vanished_paths"] == [{"backup_set": "churn", "path": str(source / "m-gone.bin")}]


def test_missing_set_path_printed_once(
    repository: Repository, tmp_path: Path, cli_environment: None, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing configured path stays a failure, and the report alone names it (no WARNING line on stderr)."""
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", PASSPHRASE.decode())
    source = churning_tree(tmp_path / "src")
    missing = tmp_path / "not-mounted"

    code, out, err = run_cli(
        capsys, "--repo", str(repository.path), "backup", "--path", str(source), "--path", str(missing)
    )

    assert code == EXIT_PARTIAL
    assert out.count(str(missing)) == 1
    assert f"  skipped {missing}: No such file or directory" in out
    assert str(missing) not in err
    assert "vanished" not in out
