"""Damage detection, passphrases and the repository lock."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.checker import check_integrity, verify_snapshot
from atlas_tui.backup.errors import RepositoryLocked, WrongPassphrase
from atlas_tui.backup.lock import LOCK_FILENAME, RepositoryLock
from atlas_tui.backup.models import BackupRequest, BackupSetSpec
from atlas_tui.backup.repository import Repository

from tests.backup.conftest import PASSPHRASE, build_tree

START = 1_767_225_600.0


def back_up(repository: Repository, source: Path, now: float) -> str:
    result = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=now))
    assert result.id is not None
    return result.id


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_intact_repository_passes(repository: Repository, tmp_path: Path) -> None:
    """Every chunk of an untouched snapshot authenticates."""
    snapshot_id = back_up(repository, build_tree(tmp_path / "src"), START)

    result = check_integrity(repository, [snapshot_id])

    assert result.ok
    assert result.chunks > 10


def test_flipped_byte_names_pack_and_snapshots(repository: Repository, tmp_path: Path) -> None:
    """One flipped byte inside a pack fails the check, naming that pack and both snapshots using it."""
    source = build_tree(tmp_path / "src")
    first = back_up(repository, source, START)
    second = back_up(repository, source, START + 60)
    index = repository.load_index()
    entries = repository.load_snapshot(first).entries
    readme = next(entry for entry in entries if entry.path.endswith(b"docs/readme.txt"))
    chunk_id = bytes.fromhex(readme.chunks[0])
    location = index[chunk_id]
    flip_byte(repository.path / "data" / location.pack_id[:2] / location.pack_id, location.offset + 20)

    result = check_integrity(repository, [first])

    assert not result.ok
    assert [damage.pack for damage in result.damaged] == [location.pack_id]
    assert "content hash does not match" in result.damaged[0].reason
    assert "authentication failed" in result.damaged[0].reason
    assert sorted(result.damaged[0].snapshots) == [first, second]


def test_flipped_byte_fails_verify(repository: Repository, tmp_path: Path) -> None:
    """A test restore over a damaged chunk reports failure instead of writing bad data."""
    snapshot_id = back_up(repository, build_tree(tmp_path / "src"), START)
    pack_id = repository.pack_ids()[0]
    flip_byte(repository.path / "data" / pack_id[:2] / pack_id, 30)

    result = verify_snapshot(repository, repository.load_snapshot(snapshot_id), scratch=tmp_path)

    assert result.status == "failed"
    assert pack_id in result.mismatches[0]


def test_missing_pack_reported(repository: Repository, tmp_path: Path) -> None:
    """A deleted pack is reported as unreadable with the snapshots that need it."""
    snapshot_id = back_up(repository, build_tree(tmp_path / "src"), START)
    pack_id = repository.pack_ids()[0]
    (repository.path / "data" / pack_id[:2] / pack_id).unlink()

    result = check_integrity(repository, [snapshot_id])

    assert result.damaged[0].pack == pack_id
    assert "cannot read the pack" in result.damaged[0].reason
    assert result.damaged[0].snapshots == [snapshot_id]


def test_wrong_passphrase(repository: Repository) -> None:
    """A wrong passphrase fails with a message naming the repository and what to check."""
    with pytest.raises(WrongPassphrase, match="wrong passphrase for the backup repository at .*repo"):
        Repository.open(repository.path, b"not the passphrase")


def test_key_file_of_other_repository(repository: Repository, tmp_path: Path) -> None:
    """A key file copied from another repository with the same passphrase does not open this one."""
    other = Repository.init(tmp_path / "other", PASSPHRASE, now=START, scrypt_n=2**10)
    for path in (repository.path / "keys").iterdir():
        path.unlink()
    for path in (other.path / "keys").iterdir():
        (repository.path / "keys" / path.name).write_bytes(path.read_bytes())

    with pytest.raises(WrongPassphrase):
        Repository.open(repository.path, PASSPHRASE)


def test_live_lock_rejected(repository: Repository, tmp_path: Path) -> None:
    """A backup while another holder has the lock fails with the holder's pid."""
    source = build_tree(tmp_path / "src")

    with RepositoryLock(repository.path, now=START):
        with pytest.raises(RepositoryLocked, match=r"locked by pid \d+"):
            back_up(repository, source, START)


def test_stale_lock_taken_over(repository: Repository, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A lock file naming a process that is gone is taken over with a warning."""
    owner = {"host": socket.gethostname(), "pid": 999_999_999, "boot_id": "", "time": START}
    (repository.path / LOCK_FILENAME).write_text(json.dumps(owner))

    with caplog.at_level(logging.WARNING, logger="atlas_tui.backup.lock"):
        back_up(repository, build_tree(tmp_path / "src"), START)

    assert "taking over stale backup lock" in caplog.text
    assert "old_pid=999999999" in caplog.text
    assert (repository.path / LOCK_FILENAME).read_text() == ""


def test_sealed_objects_unreadable(repository: Repository, tmp_path: Path) -> None:
    """No file name or content of the source appears in the repository's bytes."""
    source = build_tree(tmp_path / "src")
    back_up(repository, source, START)

    stored = b"".join(path.read_bytes() for path in repository.path.rglob("*") if path.is_file())

    assert b"hello backup" not in stored
    assert b"readme.txt" not in stored
    assert time.time() > START
