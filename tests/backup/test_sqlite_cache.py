"""The files cache for live SQLite databases: an unchanged database is not copied again."""

from __future__ import annotations

import time
from pathlib import Path

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.models import BackupRequest, BackupResult, BackupSetSpec
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restorer import Restorer

from tests.backup.conftest import restored_root
from tests.backup.test_sqlite_live import count_rows, make_database


def back_up(repository: Repository, directory: Path, now: float) -> BackupResult:
    request = BackupRequest(sets=[BackupSetSpec(name="data", paths=[directory], sqlite=True)], now=now)
    result = Archiver(repository).run(request)
    assert result.status == "ok", result.skipped
    return result


def database_entry_chunks(repository: Repository, snapshot_id: str) -> list[str]:
    snapshot = repository.load_snapshot(snapshot_id)
    return next(entry.chunks for entry in snapshot.entries if entry.sqlite)


def test_unchanged_database_reused(repository: Repository, tmp_path: Path) -> None:
    """A database whose file and -wal file did not change is taken from the parent without a copy."""
    data = tmp_path / "data"
    data.mkdir()
    holder = make_database(data / "atlas.db", 2000)
    later = time.time() + 60

    first = back_up(repository, data, later)
    second = back_up(repository, data, later + 60)
    holder.close()

    assert first.files_read == 1
    assert second.files_read == 0
    assert second.new_bytes_stored == 0
    assert second.id is not None and first.id is not None
    assert database_entry_chunks(repository, second.id) == database_entry_chunks(repository, first.id)


def test_wal_change_copies_again(repository: Repository, tmp_path: Path) -> None:
    """Rows committed to the -wal file after the parent make the next run copy the database."""
    data = tmp_path / "data"
    data.mkdir()
    holder = make_database(data / "atlas.db", 2000)
    later = time.time() + 60
    back_up(repository, data, later)

    holder.executemany("INSERT INTO samples (batch, value) VALUES (?, randomblob(100))", [(7,)] * 50)
    second = back_up(repository, data, later + 60)
    holder.close()

    assert second.files_read == 1
    assert second.id is not None
    Restorer(repository).restore(repository.load_snapshot(second.id), tmp_path / "out")
    assert count_rows(restored_root(tmp_path / "out", data) / "atlas.db") == 2050


def test_recently_changed_database_copied(repository: Repository, tmp_path: Path) -> None:
    """A database changed less than a second before the parent started is copied again, unchanged or not."""
    data = tmp_path / "data"
    data.mkdir()
    holder = make_database(data / "atlas.db", 2000)
    now = time.time()

    back_up(repository, data, now)
    second = back_up(repository, data, now + 60)
    holder.close()

    assert second.files_read == 1
