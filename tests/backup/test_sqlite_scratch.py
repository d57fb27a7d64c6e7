"""Database copies in `.tmp-sqlite-` directories: private while they exist, removed after a killed run."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.models import BackupRequest, BackupSetSpec
from atlas_tui.backup.repository import Repository
from atlas_tui.cli_backup import EXIT_OK

from tests.backup.conftest import PASSPHRASE, run_cli

# Backs up the databases in argv[2] into the repository in argv[1] and kills itself with
# SIGKILL while the first database copy exists.
KILLED_CHILD = """
import os, signal, sys, time
from pathlib import Path
from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.models import BackupRequest, BackupSetSpec
from atlas_tui.backup.repository import Repository

repository = Repository.open(Path(sys.argv[1]), sys.argv[3].encode())

def progress(entries, read):
    if list(repository.path.glob(".tmp-sqlite-*/copy.db")):
        os.kill(os.getpid(), signal.SIGKILL)

request = BackupRequest(sets=[BackupSetSpec(name="db", paths=[Path(sys.argv[2])], sqlite=True)], now=time.time())
Archiver(repository, progress=progress).run(request)
"""


def make_database(path: Path, rows: int = 2000) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO t (body) VALUES (?)", [(f"row {n} " * 20,) for n in range(rows)])
        conn.commit()
    finally:
        conn.close()


def kill_during_copy(repository: Repository, source: Path) -> Path:
    """Run a backup of `source` in a child that SIGKILLs itself mid-copy; return the copy directory it left."""
    child = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, str(repository.path), str(source), PASSPHRASE.decode()],
        timeout=60, check=False,
    )
    assert child.returncode == -signal.SIGKILL
    (left,) = repository.path.glob(".tmp-sqlite-*")
    return left


@pytest.fixture
def repository_cli(cli_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give `backup-manager` the passphrase of the `repository` fixture."""
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", PASSPHRASE.decode())


@pytest.fixture
def databases(tmp_path: Path) -> Path:
    source = tmp_path / "dbs"
    source.mkdir()
    make_database(source / "app.db")
    return source


def test_database_copy_private(repository: Repository, databases: Path) -> None:
    """While a database is stored, its plaintext copy is mode 0600 in a directory of mode 0700."""
    seen: list[tuple[int, int]] = []

    def progress(entries: int, read: int) -> None:
        for copy in repository.path.glob(".tmp-sqlite-*/copy.db"):
            seen.append((stat.S_IMODE(copy.parent.stat().st_mode), stat.S_IMODE(copy.stat().st_mode)))

    previous = os.umask(0o022)
    try:
        result = Archiver(repository, progress=progress).run(
            BackupRequest(sets=[BackupSetSpec(name="db", paths=[databases], sqlite=True)], now=time.time())
        )
    finally:
        os.umask(previous)

    assert result.status == "ok"
    assert seen, "the progress callback never saw the database copy"
    assert {directory for directory, _ in seen} == {0o700}
    assert {copy for _, copy in seen} == {0o600}
    assert list(repository.path.glob(".tmp-sqlite-*")) == []


def test_backup_removes_leftover_copy(
    repository: Repository, databases: Path, repository_cli: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backup removes the database copy that a run killed with SIGKILL left in the repository."""
    left = kill_during_copy(repository, databases)
    other = repository.path.parent / "other"
    other.mkdir()
    (other / "note.txt").write_text("no database here\n")

    code, out, err = run_cli(capsys, "--repo", str(repository.path), "backup", "--path", str(other))

    assert code == EXIT_OK, out + err
    assert not left.exists()


def test_cleanup_removes_leftover_copy(
    repository: Repository, databases: Path, repository_cli: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cleanup` removes a leftover database copy and counts it in the unfinished files and freed bytes."""
    left = kill_during_copy(repository, databases)
    size = sum(path.stat().st_size for path in left.rglob("*") if path.is_file())
    assert size > 0

    code, out, err = run_cli(capsys, "--repo", str(repository.path), "--json", "cleanup", "--dry-run")

    assert code == EXIT_OK, err
    assert '"removed_temporaries": 1' in out
    assert left.exists()

    code, out, err = run_cli(capsys, "--repo", str(repository.path), "cleanup")

    assert code == EXIT_OK, err
    assert not left.exists()
    assert "1 unfinished files removed" in out
    freed = int(out.rsplit(";", 1)[1].split()[0])
    # Cleanup also replaces the index file, whose size changes by a few bytes.
    assert freed >= size - 1024
