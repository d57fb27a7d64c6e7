"""Manifest pieces taken whole from the parent: only pieces whose paths or stat fields changed are rebuilt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.chunk_store import ChunkStore, FileDigest
from atlas_tui.backup.manifest import MAX_PIECE_ENTRIES
from atlas_tui.backup.models import BackupRequest, BackupResult, BackupSetSpec, Entry
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restorer import Restorer

from tests.backup.conftest import build_tree, restored_root
from tests.backup.test_sqlite_live import START


def back_up(repository: Repository, source: Path, now: float) -> BackupResult:
    result = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=now))
    assert result.id is not None
    return result


def many_files(root: Path) -> Path:
    """A tree of about 3,000 entries, so that its manifest has several pieces."""
    source = build_tree(root)
    for number in range(3000):
        (source / "docs" / f"note-{number:04}.txt").write_bytes(b"note %d\n" % number)
    return source


def entry_at(repository: Repository, result: BackupResult, suffix: bytes) -> Entry:
    assert result.id is not None
    return next(entry for entry in repository.load_snapshot(result.id).entries if entry.path.endswith(suffix))


def pieces(repository: Repository, result: BackupResult) -> list[str]:
    assert result.id is not None
    return repository.load_snapshot(result.id, entries=False).manifest_chunks or []


def test_mode_change_rebuilds_piece(repository: Repository, tmp_path: Path) -> None:
    """A chmod (a new ctime) rebuilds the file's piece alone, and the snapshot records the new mode."""
    source = many_files(tmp_path / "src")
    first = back_up(repository, source, START)
    os.chmod(source / "docs" / "note-0042.txt", 0o600)

    second = back_up(repository, source, START + 60)

    assert second.files_read == 1
    assert entry_at(repository, second, b"note-0042.txt").mode == 0o600
    assert len(set(pieces(repository, second)) - set(pieces(repository, first))) == 1


def test_directory_change_recorded(repository: Repository, tmp_path: Path) -> None:
    """A file added and removed again leaves the same paths but a new directory mtime, which is recorded."""
    source = many_files(tmp_path / "src")
    back_up(repository, source, START)
    (source / "empty-dir").mkdir()
    (source / "empty-dir" / "gone").write_bytes(b"x")
    (source / "empty-dir" / "gone").unlink()
    os.utime(source / "empty-dir", ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    second = back_up(repository, source, START + 60)
    os.utime(source / "empty-dir", ns=(1_700_000_100_000_000_000, 1_700_000_100_000_000_000))

    third = back_up(repository, source, START + 120)

    assert entry_at(repository, second, b"empty-dir").mtime_ns == 1_700_000_000_000_000_000
    assert entry_at(repository, third, b"empty-dir").mtime_ns == 1_700_000_100_000_000_000


def test_parent_without_piece_list(repository: Repository, tmp_path: Path) -> None:
    """A parent written before pieces were described still serves the files cache."""
    source = many_files(tmp_path / "src")
    first = back_up(repository, source, START)
    assert first.id is not None
    old_style = repository.load_snapshot(first.id).model_copy(update={"manifest_pieces": None})
    repository.save_snapshot(old_style)

    second = back_up(repository, source, START + 60)

    assert second.files_read == 0
    assert second.new_chunks == 0
    assert pieces(repository, second) == pieces(repository, first)


def test_unchanged_run_reads_no_index(repository: Repository, tmp_path: Path) -> None:
    """A run in which nothing changed takes every piece from the parent without reading the index."""
    source = many_files(tmp_path / "src")
    first = back_up(repository, source, START)
    calls: list[int] = []
    original = Repository.load_index

    def counted(self: Repository) -> dict:
        calls.append(1)
        return original(self)

    Repository.load_index = counted  # type: ignore[method-assign]
    try:
        second = back_up(repository, source, START + 60)
    finally:
        Repository.load_index = original  # type: ignore[method-assign]

    assert calls == []
    assert second.files_read == 0
    assert pieces(repository, second) == pieces(repository, first)


def test_pieces_stored_while_files_are_read(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed piece whose files need no reading goes to the chunk store before later files are read.

    Keeping every piece's entries until the end of the run took about 50 MiB for
    42,000 entries.
    """
    source = many_files(tmp_path / "src")
    for number in range(3000, 9000):
        (source / "docs" / f"note-{number:04}.txt").write_bytes(b"note %d\n" % number)
    # A piece ends after at most MAX_PIECE_ENTRIES entries, so the piece with docs/ and
    # the piece with random.bin, 9,000 entries later, are never one piece.
    assert MAX_PIECE_ENTRIES < 9000
    first = back_up(repository, source, START)
    # A new mtime of docs/ changes its piece without a file to read, and random.bin,
    # in a later piece, gets new content.
    (source / "docs" / "scratch").write_bytes(b"x")
    (source / "docs" / "scratch").unlink()
    (source / "random.bin").write_bytes(os.urandom(150_000))
    added: list[str] = []
    real_add = ChunkStore.add

    def recording_add(
        self: ChunkStore, digest: FileDigest, chunk: memoryview | bytes, similar: bytes | None = None
    ) -> None:
        added.append("piece" if bytes(chunk[:2]) == b"[{" else "file")
        real_add(self, digest, chunk, similar)

    monkeypatch.setattr(ChunkStore, "add", recording_add)
    second = back_up(repository, source, START + 60)

    assert len(pieces(repository, first)) >= 3
    assert added.index("piece") < added.index("file")
    assert second.id is not None
    Restorer(repository, workers=0).restore(repository.load_snapshot(second.id), tmp_path / "out")
    out = restored_root(tmp_path / "out", source)
    assert (out / "random.bin").read_bytes() == (source / "random.bin").read_bytes()
    assert sorted(os.listdir(out / "docs")) == sorted(os.listdir(source / "docs"))
