"""Delta chunks: changed database chunks and manifest pieces are stored against their parent's."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.checker import check_integrity, verify_snapshot
from atlas_tui.backup.crypto import seal_delta
from atlas_tui.backup.models import BackupRequest, BackupResult, BackupSetSpec, RetentionPolicy
from atlas_tui.backup.pruner import Pruner
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restorer import Restorer

from atlas_tui.backup.errors import CorruptData

from tests.backup.conftest import build_tree, restored_root
from tests.backup.test_integrity import flip_byte
from tests.backup.test_sqlite_live import START, make_database

ROWS = 20_000


def back_up(repository: Repository, directory: Path, now: float, *, full: bool = False) -> BackupResult:
    request = BackupRequest(sets=[BackupSetSpec(name="data", paths=[directory], sqlite=True)], now=now, full=full)
    result = Archiver(repository).run(request)
    assert result.status == "ok", result.skipped
    assert result.id is not None
    return result


def change_rows(holder: sqlite3.Connection, count: int, seed: int = 3) -> None:
    """Rewrite `count` rows spread over the whole table, a few bytes of a page each."""
    rng = random.Random(seed)
    holder.execute("BEGIN")
    for identifier in rng.sample(range(1, ROWS + 1), count):
        holder.execute("UPDATE samples SET batch = batch + 1 WHERE id = ?", (identifier,))
    holder.execute("COMMIT")


def database_chunks(repository: Repository, snapshot_id: str) -> list[bytes]:
    snapshot = repository.load_snapshot(snapshot_id)
    return [bytes.fromhex(chunk) for entry in snapshot.entries if entry.sqlite for chunk in entry.chunks]


def table_digest(path: Path) -> list[tuple[int, int, bytes]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT id, batch, value FROM samples ORDER BY id").fetchall()
    finally:
        connection.close()


@pytest.fixture
def changed(repository: Repository, tmp_path: Path) -> tuple[Path, BackupResult, BackupResult]:
    """A database backed up, 40 scattered rows changed, backed up again."""
    data = tmp_path / "data"
    data.mkdir()
    holder = make_database(data / "atlas.db", ROWS)
    now = time.time() + 60
    first = back_up(repository, data, now)
    change_rows(holder, 40)
    second = back_up(repository, data, now + 60)
    holder.close()
    return data, first, second


def test_changed_chunks_stored_as_deltas(
    repository: Repository, tmp_path: Path, changed: tuple[Path, BackupResult, BackupResult]
) -> None:
    """Each changed chunk becomes a delta against the parent's chunk at its offset, and restores exactly."""
    data, first, second = changed
    assert first.id is not None and second.id is not None
    index = repository.load_index()
    before, after = database_chunks(repository, first.id), database_chunks(repository, second.id)
    new = [chunk for chunk in after if chunk not in set(before)]

    assert new
    assert all(index[chunk].base in set(before) for chunk in new)
    # A whole compressed chunk of random blobs costs tens of KiB; a delta of a few changed rows far less.
    assert second.new_bytes_stored < len(new) * 4096
    Restorer(repository).restore(repository.load_snapshot(second.id), tmp_path / "out")
    assert table_digest(restored_root(tmp_path / "out", data) / "atlas.db") == table_digest(data / "atlas.db")
    assert verify_snapshot(repository, repository.load_snapshot(second.id)).status == "ok"


def test_full_run_also_stores_deltas(repository: Repository, tmp_path: Path) -> None:
    """`--full` rereads every file, and its changed database chunks are still deltas."""
    data = tmp_path / "data"
    data.mkdir()
    holder = make_database(data / "atlas.db", ROWS)
    now = time.time() + 60
    back_up(repository, data, now)
    change_rows(holder, 40)
    full = back_up(repository, data, now + 60, full=True)
    holder.close()

    assert full.files_read == 1
    assert full.new_chunks > 0
    assert all(location.base is not None for location in _new_locations(repository, full))


def test_cleanup_keeps_bases(
    repository: Repository, tmp_path: Path, changed: tuple[Path, BackupResult, BackupResult]
) -> None:
    """Removing the snapshot that owns the bases keeps them while a kept delta needs them."""
    data, first, second = changed
    assert second.id is not None
    Pruner(repository).cleanup(RetentionPolicy(period=1), now=second_time(repository, second) + 0.5)

    assert repository.snapshot_ids() == [second.id]
    assert check_integrity(repository, [second.id]).ok
    Restorer(repository).restore(repository.load_snapshot(second.id), tmp_path / "out")
    assert table_digest(restored_root(tmp_path / "out", data) / "atlas.db") == table_digest(data / "atlas.db")


def test_damaged_base_names_its_pack(
    repository: Repository, changed: tuple[Path, BackupResult, BackupResult]
) -> None:
    """A flipped byte in a base chunk fails integrity for its pack and names the snapshot of the delta too."""
    _, first, second = changed
    assert first.id is not None and second.id is not None
    index = repository.load_index()
    delta = next(location for location in _new_locations(repository, second) if location.base is not None)
    assert delta.base is not None
    base = index[delta.base]
    flip_byte(repository.path / "data" / base.pack_id[:2] / base.pack_id, base.offset + 20)

    result = check_integrity(repository, [second.id])

    assert [damage.pack for damage in result.damaged] == [base.pack_id]
    assert sorted(result.damaged[0].snapshots) == [first.id, second.id]


def test_rebuilt_index_keeps_bases(
    repository: Repository, tmp_path: Path, changed: tuple[Path, BackupResult, BackupResult]
) -> None:
    """The pack headers record each delta's base, so an index rebuilt from them can still read the deltas."""
    data, _, second = changed
    assert second.id is not None
    before = repository.load_index()

    repository.rebuild_index()

    assert repository.load_index() == before
    Restorer(repository).restore(repository.load_snapshot(second.id), tmp_path / "out")
    assert table_digest(restored_root(tmp_path / "out", data) / "atlas.db") == table_digest(data / "atlas.db")


def test_unrelated_chunk_stored_whole(repository: Repository) -> None:
    """A delta against unrelated content would not be smaller, so none is made."""
    rng = random.Random(5)
    base, chunk = rng.randbytes(65536), rng.randbytes(65536)

    assert seal_delta(repository.key, chunk, b"atlas-chunk:x", b"\0" * 32, base) is None


def second_time(repository: Repository, result: BackupResult) -> float:
    assert result.id is not None
    return repository.load_snapshot(result.id).time


def _new_locations(repository: Repository, result: BackupResult) -> list:
    assert result.id is not None
    index = repository.load_index()
    snapshot_ids = repository.snapshot_ids()
    older = {chunk for snapshot_id in snapshot_ids if snapshot_id != result.id
             for chunk in database_chunks(repository, snapshot_id)}
    return [index[chunk] for chunk in database_chunks(repository, result.id) if chunk not in older]


def test_damaged_manifest_chunk_named(repository: Repository, tmp_path: Path) -> None:
    """A flipped byte in a manifest chunk fails integrity for its pack and names the snapshot, and restore explains why."""
    source = build_tree(tmp_path / "src")
    result = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=START))
    assert result.id is not None
    snapshot = repository.load_snapshot(result.id, entries=False)
    assert snapshot.manifest_chunks
    location = repository.load_index()[bytes.fromhex(snapshot.manifest_chunks[0])]
    flip_byte(repository.path / "data" / location.pack_id[:2] / location.pack_id, location.offset + 20)

    integrity = check_integrity(repository, [result.id])

    assert [damage.pack for damage in integrity.damaged] == [location.pack_id]
    assert integrity.damaged[0].snapshots == [result.id]
    with pytest.raises(CorruptData, match="authentication failed"):
        repository.load_snapshot(result.id)


def test_unchanged_run_reuses_manifest_chunks(repository: Repository, tmp_path: Path) -> None:
    """A run that finds nothing changed stores no new manifest chunk, and one changed file changes one piece."""
    source = build_tree(tmp_path / "src")
    for number in range(3000):
        (source / "docs" / f"note-{number:04}.txt").write_bytes(b"note %d\n" % number)
    first = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=START))
    second = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=START + 60))
    (source / "docs" / "note-1234.txt").write_bytes(b"changed\n")
    third = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=START + 120))
    assert first.id
    assert second.id
    assert third.id
    pieces = [repository.load_snapshot(item.id, entries=False).manifest_chunks or [] for item in (first, second, third)]
    index = repository.load_index()

    assert len(pieces[0]) > 1
    assert second.new_chunks == 0
    assert pieces[1] == pieces[0]
    changed = [hex_id for hex_id in pieces[2] if hex_id not in pieces[1]]
    assert len(changed) == 1
    assert index[bytes.fromhex(changed[0])].base is not None
    assert third.new_bytes_stored < 4096
    assert [entry.path for entry in repository.load_snapshot(third.id).entries] == [
        entry.path for entry in repository.load_snapshot(first.id).entries
    ]


def test_changed_directory_entry_not_reused(repository: Repository, tmp_path: Path) -> None:
    """A directory that gained a file gets a new entry; an untouched one keeps the parent's."""
    source = build_tree(tmp_path / "src")
    first = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=START))
    (source / "docs" / "added.txt").write_bytes(b"new\n")
    second = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=START + 60))
    assert first.id is not None
    assert second.id is not None

    def directories(snapshot_id: str) -> dict[bytes, int]:
        entries = repository.load_snapshot(snapshot_id).entries
        return {entry.path: entry.mtime_ns for entry in entries if entry.type == "dir"}

    before, after = directories(first.id), directories(second.id)
    docs = next(path for path in after if path.endswith(b"src/docs"))
    deep = next(path for path in after if path.endswith(b"docs/deep"))
    assert after[docs] == (source / "docs").stat().st_mtime_ns
    assert after[docs] != before[docs]
    assert after[deep] == before[deep]
