"""Live SQLite databases: online backup copies, WAL-only rows, sidecars and a running daemon."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.errors import BackupError
from atlas_tui.backup.models import BackupRequest, BackupSetSpec
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restorer import Restorer
from atlas_tui.lockfile import DaemonLock

from tests.backup.conftest import restored_root

START = 1_767_225_600.0
BATCH = 10

# Inserts batches of BATCH rows, one transaction per batch, until killed.
WRITER = f"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint=0")
batch = 1_000_000
while True:
    batch += 1
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO samples (batch, value) VALUES (?, randomblob(200))", [(batch,)] * {BATCH})
    conn.execute("COMMIT")
"""


def make_database(path: Path, rows: int) -> sqlite3.Connection:
    """Create a WAL database whose committed rows all stay in the -wal file."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE samples (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, value BLOB)")
    conn.execute("CREATE INDEX samples_batch ON samples (batch)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO samples (batch, value) VALUES (?, randomblob(100))", [(i // BATCH,) for i in range(rows)])
    conn.execute("COMMIT")
    return conn


def count_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM samples").fetchone()[0]
    finally:
        conn.close()


def back_up_dir(repository: Repository, directory: Path, now: float = START) -> str:
    request = BackupRequest(sets=[BackupSetSpec(name="data", paths=[directory], sqlite=True)], now=now)
    result = Archiver(repository).run(request)
    assert result.status == "ok", result.skipped
    assert result.id is not None
    return result.id


def test_wal_only_rows_in_snapshot(repository: Repository, tmp_path: Path) -> None:
    """Rows committed only to the -wal file are in the restored database, and no sidecar is stored."""
    data = tmp_path / "data"
    data.mkdir()
    holder = make_database(data / "atlas.db", 5000)
    assert (data / "atlas.db-wal").stat().st_size > 0

    snapshot_id = back_up_dir(repository, data)
    snapshot = repository.load_snapshot(snapshot_id)
    Restorer(repository).restore(snapshot, tmp_path / "out")
    holder.close()

    restored = restored_root(tmp_path / "out", data) / "atlas.db"
    names = sorted(entry.path.rsplit(b"/", 1)[-1] for entry in snapshot.entries if entry.type == "file")
    assert names == [b"atlas.db"]
    assert count_rows(restored) == 5000
    assert not (restored.parent / "atlas.db-wal").exists()


def test_database_under_writes_consistent(repository: Repository, tmp_path: Path) -> None:
    """A backup taken while another process commits batches restores a sound database of whole batches."""
    data = tmp_path / "data"
    data.mkdir()
    make_database(data / "atlas.db", 1000).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(data / "atlas.db")])
    try:
        deadline = time.monotonic() + 10
        while count_rows(data / "atlas.db") < 1000 + 20 * BATCH and time.monotonic() < deadline:
            time.sleep(0.02)
        before = count_rows(data / "atlas.db")
        snapshot_id = back_up_dir(repository, data)
        after = count_rows(data / "atlas.db")
    finally:
        writer.kill()
        writer.wait()

    Restorer(repository).restore(repository.load_snapshot(snapshot_id), tmp_path / "out")

    restored = restored_root(tmp_path / "out", data) / "atlas.db"
    conn = sqlite3.connect(restored)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
        partial_batches = conn.execute(
            "SELECT count(*) FROM (SELECT batch FROM samples GROUP BY batch HAVING count(*) != ?)", (BATCH,)
        ).fetchone()[0]
    finally:
        conn.close()
    assert before > 1000
    assert before <= rows <= after
    assert partial_batches == 0


def test_stale_sidecars_removed(repository: Repository, tmp_path: Path) -> None:
    """Restoring a database deletes -wal and -shm files left in the target by another database."""
    data = tmp_path / "data"
    data.mkdir()
    make_database(data / "atlas.db", 300).close()
    snapshot_id = back_up_dir(repository, data)
    target_dir = restored_root(tmp_path / "out", data)
    target_dir.mkdir(parents=True)
    newer = make_database(target_dir.parent / "newer.db", 800)
    (target_dir / "atlas.db-wal").write_bytes((target_dir.parent / "newer.db-wal").read_bytes())
    (target_dir / "atlas.db-shm").write_bytes(b"\x00" * 32768)
    newer.close()

    Restorer(repository).restore(repository.load_snapshot(snapshot_id), tmp_path / "out")

    assert not (target_dir / "atlas.db-wal").exists()
    assert not (target_dir / "atlas.db-shm").exists()
    assert count_rows(target_dir / "atlas.db") == 300


def test_running_daemon_database_kept(repository: Repository, tmp_path: Path) -> None:
    """A restore does not replace a database whose directory a live daemon has locked."""
    data = tmp_path / "data"
    data.mkdir()
    make_database(data / "atlas.db", 100).close()
    snapshot_id = back_up_dir(repository, data)
    snapshot = repository.load_snapshot(snapshot_id)
    live_dir = restored_root(tmp_path / "out", data)
    live_dir.mkdir(parents=True)
    make_database(live_dir / "atlas.db", 7).close()

    with DaemonLock(live_dir):
        with pytest.raises(BackupError, match="running atlas daemon"):
            Restorer(repository).restore(snapshot, tmp_path / "out")
        assert count_rows(live_dir / "atlas.db") == 7

    Restorer(repository).restore(snapshot, tmp_path / "out")
    assert count_rows(live_dir / "atlas.db") == 100


def test_small_change_few_chunks(repository: Repository, tmp_path: Path) -> None:
    """Updating one row of a 1.5 MB database stores only a few page-aligned chunks in the next run."""
    data = tmp_path / "data"
    data.mkdir()
    make_database(data / "atlas.db", 12_000).close()
    first = Archiver(repository).run(
        BackupRequest(sets=[BackupSetSpec(name="data", paths=[data], sqlite=True)], now=START)
    )
    conn = sqlite3.connect(data / "atlas.db")
    conn.execute("UPDATE samples SET value = zeroblob(100) WHERE id = 6000")
    conn.commit()
    conn.close()

    second = Archiver(repository).run(
        BackupRequest(sets=[BackupSetSpec(name="data", paths=[data], sqlite=True)], now=START + 60)
    )

    database = next(entry for entry in repository.load_snapshot(second.id).entries if entry.sqlite)
    assert database.size > 1_500_000
    assert first.new_chunks >= 20
    assert second.new_chunks <= 3
