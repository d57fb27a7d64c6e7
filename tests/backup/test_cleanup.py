"""delete, cleanup (retention and prune), restore by time, status and keys on a real repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.checker import check_integrity, verify_snapshot
from atlas_tui.backup.errors import KeyNotFound, KeyRemovalRejected, SnapshotNotFound, WrongPassphrase
from atlas_tui.backup.models import BackupRequest, BackupSetSpec, RetentionPolicy
from atlas_tui.backup.packs import PackWriter
from atlas_tui.backup.pruner import Pruner
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.status import repository_status

from tests.backup.conftest import PASSPHRASE, build_tree

START = 1_767_225_600.0
DAY = 86400.0
KEEP_ALL = RetentionPolicy(period=1000 * DAY)


def back_up(repository: Repository, source: Path, now: float, name: str = "files") -> str:
    result = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name=name, paths=[source])], now=now))
    assert result.id is not None
    return result.id


def change_middle(path: Path) -> None:
    """Overwrite 20 kB in the middle of a file, so its first and last chunks stay the same."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 20_000] = os.urandom(20_000)
    path.write_bytes(bytes(data))


@pytest.fixture
def two_snapshots(repository: Repository, tmp_path: Path) -> tuple[str, str]:
    """A first snapshot, then a second without old.bin and with the middle of random.bin changed."""
    source = build_tree(tmp_path / "src")
    (source / "old.bin").write_bytes(os.urandom(200_000))
    first = back_up(repository, source, START)
    change_middle(source / "random.bin")
    (source / "old.bin").unlink()
    second = back_up(repository, source, START + DAY)
    return first, second


def test_delete_keeps_data_until_cleanup(repository: Repository, two_snapshots: tuple[str, str]) -> None:
    """delete removes only the manifest; cleanup then frees the data that only it used."""
    first, second = two_snapshots
    packs_before = set(repository.pack_ids())

    with repository.lock(now=START):
        repository.delete_snapshot(first)
    packs_after_delete = set(repository.pack_ids())
    size_before = repository.size_bytes()
    result = Pruner(repository).cleanup(KEEP_ALL, now=START + 2 * DAY)

    assert repository.snapshot_ids() == [second]
    assert packs_after_delete == packs_before
    assert result.removed_snapshots == []
    assert result.deleted_packs
    assert result.rewritten_packs
    assert result.new_packs
    assert result.freed_bytes == size_before - repository.size_bytes()
    assert result.freed_bytes > 200_000
    assert check_integrity(repository, [second]).ok
    assert verify_snapshot(repository, repository.load_snapshot(second)).status == "ok"


def test_delete_unknown_id(repository: Repository) -> None:
    """Deleting an id that does not exist names it and the list command."""
    with pytest.raises(SnapshotNotFound, match="backup_1_manual.*backup-manager list"):
        repository.delete_snapshot("backup_1_manual")


def test_cleanup_applies_retention(repository: Repository, two_snapshots: tuple[str, str], tmp_path: Path) -> None:
    """Snapshots outside the period are removed, and the next backup after the prune succeeds."""
    first, second = two_snapshots

    result = Pruner(repository).cleanup(RetentionPolicy(period=DAY), now=START + DAY + 3600)
    after = back_up(repository, tmp_path / "src", START + 3 * DAY)

    assert result.removed_snapshots == [first]
    assert result.kept_snapshots == {second: ["period", "newest"]}
    assert repository.snapshot_ids() == [second, after]
    assert check_integrity(repository, repository.snapshot_ids()).ok


def test_cleanup_never_removes_newest_success(repository: Repository, two_snapshots: tuple[str, str]) -> None:
    """With every snapshot older than the period the newest successful one stays."""
    first, second = two_snapshots

    result = Pruner(repository).cleanup(RetentionPolicy(period=60), now=START + 100 * DAY)

    assert result.removed_snapshots == [first]
    assert repository.snapshot_ids() == [second]
    assert check_integrity(repository, [second]).ok


def test_dry_run_changes_nothing(repository: Repository, two_snapshots: tuple[str, str]) -> None:
    """A dry run reports the same removals as the real run and leaves every file in place."""
    files_before = sorted(path for path in repository.path.rglob("*") if path.is_file())
    policy = RetentionPolicy(period=DAY)

    planned = Pruner(repository).cleanup(policy, now=START + DAY + 3600, dry_run=True)
    files_after = sorted(path for path in repository.path.rglob("*") if path.is_file())
    done = Pruner(repository).cleanup(policy, now=START + DAY + 3600)

    assert files_after == files_before
    assert planned.dry_run
    assert planned.removed_snapshots == done.removed_snapshots
    assert planned.deleted_packs == done.deleted_packs
    assert planned.rewritten_packs == done.rewritten_packs
    assert planned.freed_bytes > 0
    assert abs(planned.freed_bytes - done.freed_bytes) < done.freed_bytes * 0.2


def test_cleanup_removes_orphans(repository: Repository, tmp_path: Path) -> None:
    """A finished pack that no index names and an unfinished pack, as a killed backup leaves them, are removed."""
    snapshot_id = back_up(repository, build_tree(tmp_path / "src"), START)
    writer = PackWriter(repository.path, repository.key)
    writer.add(b"\x01" * 32, b"orphan chunk")
    orphan = writer.finish().pack_id
    unfinished = PackWriter(repository.path, repository.key)
    unfinished.add(b"\x02" * 32, b"never finished")
    unfinished._file.handle.flush()

    result = Pruner(repository).cleanup(KEEP_ALL, now=START + 60)

    assert result.deleted_packs == [orphan]
    assert result.removed_temporaries == 1
    assert orphan not in repository.pack_ids()
    assert not unfinished._file.temp_path.exists()
    assert check_integrity(repository, [snapshot_id]).ok


def test_cleanup_of_clean_repository(repository: Repository, tmp_path: Path) -> None:
    """A repository where every chunk is used keeps every pack and frees nothing."""
    back_up(repository, build_tree(tmp_path / "src"), START)
    packs = repository.pack_ids()

    result = Pruner(repository).cleanup(KEEP_ALL, now=START + 60)

    assert repository.pack_ids() == packs
    assert result.deleted_packs == result.rewritten_packs == []
    assert len(repository.index_files()) == 1


def test_snapshot_at(repository: Repository, two_snapshots: tuple[str, str]) -> None:
    """--at picks the newest successful snapshot at or before the time, inclusive."""
    first, second = two_snapshots

    assert repository.snapshot_at(START).id == first
    assert repository.snapshot_at(START + DAY - 1).id == first
    assert repository.snapshot_at(START + DAY).id == second
    assert repository.snapshot_at(START + 50 * DAY).id == second


def test_snapshot_at_too_early(repository: Repository, two_snapshots: tuple[str, str]) -> None:
    """A time before every snapshot fails naming the oldest snapshot and its time."""
    first, _second = two_snapshots

    with pytest.raises(SnapshotNotFound, match=f"oldest is {first} from 2026-01-01T00:00:00\\+00:00"):
        repository.snapshot_at(START - 1)


def test_status_per_set(repository: Repository, tmp_path: Path) -> None:
    """status reports each set's last run and last success, the snapshot count and the size."""
    source = build_tree(tmp_path / "src")
    back_up(repository, source, START, name="node")
    last_node = back_up(repository, source, START + 60, name="node")
    only_db = back_up(repository, source / "docs", START + 120, name="db")

    status = repository_status(repository)

    assert status.snapshots == 3
    assert status.size_bytes == repository.size_bytes() > 0
    assert [item.name for item in status.sets] == ["db", "node"]
    assert status.sets[0].last_run == status.sets[0].last_success == only_db
    assert status.sets[1].last_run == last_node
    assert status.sets[1].last_status == "ok"
    assert status.sets[1].last_success_time == START + 60


def test_key_add_list_remove(repository: Repository) -> None:
    """A second key opens the repository, the first still does, and only a key not in use can go."""
    added = repository.add_key(b"second passphrase", now=START, scrypt_n=2**10)

    by_second = Repository.open(repository.path, b"second passphrase")
    by_first = Repository.open(repository.path, PASSPHRASE)
    keys = by_first.list_keys()
    with pytest.raises(KeyRemovalRejected, match="opened the repository"):
        by_first.remove_key(by_first.key_id)
    by_second.remove_key(by_first.key_id)

    assert by_second.key_id == added.id
    assert by_second.key.to_bytes() == by_first.key.to_bytes()
    assert sorted(item.id for item in keys) == sorted([repository.key_id, added.id])
    assert [item.current for item in keys if item.id == repository.key_id] == [True]
    with pytest.raises(WrongPassphrase):
        Repository.open(repository.path, PASSPHRASE)
    assert [item.id for item in by_second.list_keys()] == [added.id]


def test_key_remove_last_or_unknown(repository: Repository) -> None:
    """The last key cannot be removed, and an unknown id is named."""
    with pytest.raises(KeyRemovalRejected, match="last key"):
        repository.remove_key(repository.key_id)
    with pytest.raises(KeyNotFound, match="0000"):
        repository.remove_key("0000")


def test_reader_follows_chunks_cleanup_moved(repository: Repository, tmp_path: Path) -> None:
    """A restore's chunk reader, opened before a cleanup rewrote a pack, rereads the index and finds the chunk."""
    from atlas_tui.backup.chunk_reader import ChunkReader

    source = tmp_path / "src"
    source.mkdir()
    (source / "keep.bin").write_bytes(os.urandom(20_000))
    (source / "drop.bin").write_bytes(os.urandom(20_000))
    first = back_up(repository, source, START)
    (source / "drop.bin").unlink()
    second = back_up(repository, source, START + DAY)
    snapshot = repository.load_snapshot(second)
    keep = next(entry for entry in snapshot.entries if entry.path.endswith(b"keep.bin"))
    reader = ChunkReader(repository, repository.load_index())
    old_pack = reader.index[bytes.fromhex(keep.chunks[0])].pack_id
    repository.delete_snapshot(first)

    Pruner(repository).cleanup(KEEP_ALL, now=START + 2 * DAY)
    with reader:
        data = b"".join(reader.iter_chunks(keep))

    assert data == (source / "keep.bin").read_bytes()
    assert reader.index[bytes.fromhex(keep.chunks[0])].pack_id != old_pack
