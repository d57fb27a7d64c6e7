"""`KeyRotator`: data moves to a new encryption key, restores stay exact and the old key opens nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.checker import check_integrity
from atlas_tui.backup.crypto import NONCE_BYTES, MasterKey, reseal, seal, seal_delta
from atlas_tui.backup.errors import CorruptData, KeyRotationRejected
from atlas_tui.backup.keys import rewrite_key_file
from atlas_tui.backup.models import BackupRequest, BackupSetSpec, RetentionPolicy
from atlas_tui.backup.packs import PackWriter, chunk_associated, pack_path
from atlas_tui.backup.pruner import Pruner
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restorer import Restorer
from atlas_tui.backup.rotation import KILL_AT_ENV, KeyRotator, kill_hook_from_environment

from tests.backup.conftest import PASSPHRASE, build_tree, restored_root, tree_state
from tests.backup.sealed_objects import opens, pack_objects, sealed_objects

START = 1_767_225_600.0
DAY = 86400.0

# Opens the repository in argv[1] and rotates with batches of argv[2] bytes. The kill
# point comes from ATLAS_BACKUP_TEST_ROTATE_KILL_AT.
CHILD = """
import sys
from pathlib import Path
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.rotation import KeyRotator

repository = Repository.open(Path(sys.argv[1]), sys.argv[3].encode())
KeyRotator(repository, sys.argv[3].encode(), batch_bytes=int(sys.argv[2])).rotate(now=0.0)
"""


def back_up(repository: Repository, source: Path, now: float) -> str:
    result = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=now))
    assert result.id is not None
    return result.id


def two_snapshots(repository: Repository, source: Path) -> list[str]:
    """Back up `source`, change part of it, and back it up again."""
    (source / "old.bin").write_bytes(os.urandom(120_000))
    first = back_up(repository, source, START)
    data = bytearray((source / "random.bin").read_bytes())
    data[70_000:90_000] = os.urandom(20_000)
    (source / "random.bin").write_bytes(bytes(data))
    (source / "old.bin").unlink()
    return [first, back_up(repository, source, START + DAY)]


def assert_only_new_key(repository: Repository, old: MasterKey) -> None:
    """Every sealed object opens with the repository's key and none with the old encryption key."""
    objects = list(sealed_objects(repository))
    assert objects
    assert [name for name, sealed, associated in objects if opens(old.encryption, sealed, associated)] == []
    new = repository.key.encryption
    assert [name for name, sealed, associated in objects if not opens(new, sealed, associated)] == []


def test_rotate_restores_exactly(repository: Repository, tmp_path: Path) -> None:
    """After a rotation both snapshots restore byte for byte and integrity passes."""
    source = build_tree(tmp_path / "src")
    snapshot_ids = two_snapshots(repository, source)
    old = repository.key

    result = KeyRotator(repository, PASSPHRASE).rotate(now=START + 2 * DAY)
    reopened = Repository.open(repository.path, PASSPHRASE)
    Restorer(reopened).restore(reopened.load_snapshot(snapshot_ids[1]), tmp_path / "out")

    assert result.packs_rewritten == len(reopened.pack_ids())
    assert result.snapshots_rewritten == 2
    assert not result.resumed
    assert reopened.key.encryption != old.encryption
    assert reopened.key.chunk_id == old.chunk_id
    assert reopened.key.chunker == old.chunker
    assert reopened.key.previous == ()
    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)
    assert check_integrity(reopened, snapshot_ids).ok


def test_old_key_opens_nothing(repository: Repository, tmp_path: Path) -> None:
    """No pack header, chunk, index file or snapshot opens with the old key after a rotation."""
    two_snapshots(repository, build_tree(tmp_path / "src"))
    old = repository.key
    before = list(sealed_objects(repository))

    KeyRotator(repository, PASSPHRASE).rotate(now=START + 2 * DAY)

    assert all(opens(old.encryption, sealed, associated) for _name, sealed, associated in before)
    assert_only_new_key(Repository.open(repository.path, PASSPHRASE), old)


def test_deleted_copy_unreadable(repository: Repository, tmp_path: Path) -> None:
    """A pack copied away before the rotation does not open with the key the passphrase now gives."""
    two_snapshots(repository, build_tree(tmp_path / "src"))
    pack_id = repository.pack_ids()[0]
    copy = tmp_path / pack_id
    shutil.copy(pack_path(repository.path, pack_id), copy)
    old_objects = list(pack_objects(copy, repository.key))

    KeyRotator(repository, PASSPHRASE).rotate(now=START + 2 * DAY)
    key = Repository.open(repository.path, PASSPHRASE).key

    assert len(old_objects) > 1
    assert not any(opens(key.encryption, sealed, associated) for _name, sealed, associated in old_objects)
    assert pack_id not in repository.pack_ids()


def test_delta_chunk_keeps_base(repository: Repository) -> None:
    """A delta chunk is re-encrypted as a delta: its flag byte and its base in the index stay."""
    key = repository.key
    base = os.urandom(60_000)
    child = base[:30_000] + b"changed" + base[30_007:]
    base_id, child_id = repository.chunk_id(base), repository.chunk_id(child)
    delta = seal_delta(key, child, chunk_associated(child_id), base_id, base)
    assert delta is not None
    writer = PackWriter(repository.path, key)
    writer.add(base_id, base)
    writer.add_sealed(child_id, delta, len(child), base_id)
    repository.write_index([writer.finish()])

    KeyRotator(repository, PASSPHRASE).rotate(now=START)
    reopened = Repository.open(repository.path, PASSPHRASE)
    index = reopened.load_index()
    location = index[child_id]
    with pack_path(reopened.path, location.pack_id).open("rb") as handle:
        handle.seek(location.offset)
        sealed = handle.read(location.length)
    cipher = AESGCM(reopened.key.encryption)
    plain = cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], chunk_associated(child_id))

    assert location.base == base_id
    assert plain[0] == 2
    assert reopened.read_chunk(location, child_id, index=index) == child
    assert_only_new_key(reopened, key)


def test_reseal_keeps_unknown_flag() -> None:
    """reseal passes a payload with a flag it does not know through unchanged."""
    old = MasterKey.generate()
    new = replace(old, encryption=os.urandom(32), previous=(old.encryption,))
    nonce = os.urandom(NONCE_BYTES)
    sealed = nonce + AESGCM(old.encryption).encrypt(nonce, b"\x09payload of a future kind", b"ad")

    resealed = reseal(new, sealed, b"ad", "test object")

    assert resealed is not None
    assert AESGCM(new.encryption).decrypt(resealed[:NONCE_BYTES], resealed[NONCE_BYTES:], b"ad") == (
        b"\x09payload of a future kind"
    )
    assert reseal(new, resealed, b"ad", "test object") is None
    with pytest.raises(CorruptData, match="test object: authentication failed"):
        reseal(replace(new, previous=()), sealed, b"ad", "test object")


def test_master_key_bytes_round_trip() -> None:
    """A master key with previous keys survives to_bytes and from_bytes; a ragged length is rejected."""
    key = replace(MasterKey.generate(), previous=(os.urandom(32), os.urandom(32)))

    assert MasterKey.from_bytes(key.to_bytes()) == key
    assert len(key.to_bytes()) == 5 * 32
    with pytest.raises(CorruptData, match="master key has 100 bytes"):
        MasterKey.from_bytes(os.urandom(100))


def test_mixed_pack_after_crash(repository: Repository, tmp_path: Path) -> None:
    """A pack whose header is under the new key but whose chunk is under the old one is rewritten too."""
    source = build_tree(tmp_path / "src")
    back_up(repository, source, START)
    old = repository.key
    new = replace(old, encryption=os.urandom(32), previous=(old.encryption,))
    rewrite_key_file(repository.path / "keys", repository.config.id, repository.key_id, new, PASSPHRASE)
    repository.key = new
    chunk = os.urandom(5_000)
    chunk_id = repository.chunk_id(chunk)
    writer = PackWriter(repository.path, new)
    writer.add_sealed(chunk_id, seal(old, chunk, chunk_associated(chunk_id)), len(chunk))
    mixed = writer.finish()
    repository.write_index([mixed])

    result = KeyRotator(repository, PASSPHRASE).rotate(now=START + DAY)
    reopened = Repository.open(repository.path, PASSPHRASE)

    assert result.resumed
    assert mixed.pack_id not in reopened.pack_ids()
    assert reopened.read_chunk(reopened.load_index()[chunk_id], chunk_id) == chunk
    assert reopened.key.encryption == new.encryption
    assert_only_new_key(reopened, old)


def test_other_keys_rejected_then_removed(repository: Repository) -> None:
    """Key files of other passphrases stop the rotation unless their ids are confirmed, then go."""
    other = repository.add_key(b"second passphrase", now=START, scrypt_n=2**10)
    packs = repository.pack_ids()
    rotator = KeyRotator(repository, PASSPHRASE)

    with pytest.raises(KeyRotationRejected, match=other.id) as rejected:
        rotator.rotate(now=START)
    assert "--yes" in str(rejected.value)
    assert "key remove" in str(rejected.value)
    assert [item.id for item in repository.list_keys()] != [repository.key_id]
    assert repository.pack_ids() == packs
    assert repository.key.previous == ()

    result = rotator.rotate(now=START, remove_keys=[other.id])

    assert result.removed_keys == [other.id]
    assert [item.id for item in repository.list_keys()] == [repository.key_id]


def test_temporaries_and_unindexed_packs_removed(repository: Repository, tmp_path: Path) -> None:
    """Leftovers of killed runs (.tmp- files, packs no index names) are deleted, not rotated."""
    back_up(repository, build_tree(tmp_path / "src"), START)
    writer = PackWriter(repository.path, repository.key)
    writer.add(b"\x01" * 32, b"orphan chunk")
    orphan = writer.finish()
    (repository.path / "index" / ".tmp-leftover").write_bytes(b"partial")

    result = KeyRotator(repository, PASSPHRASE).rotate(now=START)

    assert result.unindexed_packs_deleted == 1
    assert result.temporaries_removed == 1
    assert orphan.pack_id not in repository.pack_ids()
    assert not list(repository.path.rglob(".tmp-*"))


@pytest.mark.parametrize(
    "kill_at", ["pack-written:3", "index-written:2", "old-index-removed:2", "pack-removed:3", "snapshot-written"]
)
def test_killed_between_batches(repository: Repository, tmp_path: Path, kill_at: str) -> None:
    """A rotation with one pack per batch killed at `kill_at` leaves a readable repository, and a rerun finishes."""
    source = build_tree(tmp_path / "src")
    snapshot_ids = two_snapshots(repository, source)
    old = repository.key
    assert len(repository.pack_ids()) >= 4

    environment = {**os.environ, KILL_AT_ENV: kill_at}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(repository.path), "1", PASSPHRASE.decode()],
        capture_output=True, timeout=120, env=environment, check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    killed = Repository.open(repository.path, PASSPHRASE)
    assert killed.key.previous == (old.encryption,)
    assert check_integrity(killed, snapshot_ids).ok
    assert {entry.pack_id for entry in killed.load_index().values()} <= set(killed.pack_ids())

    result = KeyRotator(killed, PASSPHRASE).rotate(now=START + 2 * DAY)
    finished = Repository.open(repository.path, PASSPHRASE)
    Restorer(finished).restore(finished.load_snapshot(snapshot_ids[1]), tmp_path / "out")

    assert result.resumed
    assert finished.key.previous == ()
    assert check_integrity(finished, snapshot_ids).ok
    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)
    assert_only_new_key(finished, old)


def test_backup_and_cleanup_between_runs(repository: Repository, tmp_path: Path) -> None:
    """Backups and cleanups after a killed rotation read both keys, and the rerun moves their output too."""
    source = build_tree(tmp_path / "src")
    first, second = two_snapshots(repository, source)
    old = repository.key
    environment = {**os.environ, KILL_AT_ENV: "pack-written:2"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(repository.path), "1", PASSPHRASE.decode()],
        capture_output=True, timeout=120, env=environment, check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    killed = Repository.open(repository.path, PASSPHRASE)
    (source / "new.bin").write_bytes(os.urandom(50_000))
    third = back_up(killed, source, START + 2 * DAY)
    Pruner(killed).cleanup(RetentionPolicy(period=DAY + 3600), now=START + 2 * DAY + 60)
    assert killed.snapshot_ids() == [second, third]
    KeyRotator(killed, PASSPHRASE).rotate(now=START + 3 * DAY)
    finished = Repository.open(repository.path, PASSPHRASE)
    Restorer(finished).restore(finished.load_snapshot(third), tmp_path / "out")

    assert first not in finished.snapshot_ids()
    assert check_integrity(finished, [second, third]).ok
    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)
    assert_only_new_key(finished, old)


def test_kill_hook_rejects_unknown_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill point that names no checkpoint fails at once and lists the valid ones."""
    monkeypatch.setenv(KILL_AT_ENV, "no-such-step")

    with pytest.raises(ValueError, match="key-written"):
        kill_hook_from_environment()


def test_damaged_pack_stops_rotation(repository: Repository, tmp_path: Path) -> None:
    """A chunk that no key opens stops the rotation with the fix in the message, and the data stays readable."""
    snapshot_ids = two_snapshots(repository, build_tree(tmp_path / "src"))
    entries = repository.load_snapshot(snapshot_ids[1]).entries
    readme = next(entry for entry in entries if entry.path.endswith(b"docs/readme.txt"))
    location = repository.load_index()[bytes.fromhex(readme.chunks[0])]
    path = pack_path(repository.path, location.pack_id)
    data = bytearray(path.read_bytes())
    data[location.offset + 20] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(CorruptData, match="rotation is unfinished") as stopped:
        KeyRotator(repository, PASSPHRASE).rotate(now=START + 2 * DAY)
    reopened = Repository.open(repository.path, PASSPHRASE)
    damaged = check_integrity(reopened, snapshot_ids)

    assert "backup-manager integrity" in str(stopped.value)
    assert reopened.key.previous
    assert [item.pack for item in damaged.damaged] == [location.pack_id]
