"""Backup, incremental backup and restore of generated trees, compared byte for byte."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.checker import verify_snapshot
from atlas_tui.backup.errors import BackupError, UnsafeRestorePath
from atlas_tui.backup.models import BackupRequest, BackupSetSpec, Entry
from atlas_tui.backup.packs import pack_path
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restorer import Restorer, is_within

from tests.backup.conftest import FIXED_MTIME_NS, NON_UTF8_NAME, build_tree, restored_root, tree_state

START = 1_767_225_600.0


def back_up(repository: Repository, paths: list[Path], now: float, *, full: bool = False):
    request = BackupRequest(sets=[BackupSetSpec(name="files", paths=paths)], now=now, full=full)
    return Archiver(repository).run(request)


def test_restore_by_id_equals_source(repository: Repository, tmp_path: Path) -> None:
    """A restore reproduces content, modes, mtimes, symlinks, the FIFO and the non-UTF-8 name."""
    source = build_tree(tmp_path / "src")
    result = back_up(repository, [source], START)

    Restorer(repository).restore(repository.load_snapshot(result.id), tmp_path / "out")

    restored = tree_state(restored_root(tmp_path / "out", source))
    assert result.status == "ok"
    assert result.id == "backup_1767225600_manual"
    assert restored == tree_state(source)
    assert NON_UTF8_NAME in restored
    assert restored[b"link-to-readme"][:2] == ("symlink", b"docs/readme.txt")
    assert restored[b"pipe"][0] == 0o010000


def test_incremental_reads_changed_files(repository: Repository, tmp_path: Path) -> None:
    """The second run reads only the changed and new files; the others come from the files cache."""
    source = build_tree(tmp_path / "src")
    first = back_up(repository, [source], START)
    (source / "text.log").write_bytes(b"line of log text\n" * 5001)
    (source / "new.txt").write_bytes(b"new file\n")
    (source / "docs" / "readme.txt").unlink()

    second = back_up(repository, [source], START + 60)

    assert first.files_read == 6
    assert second.files_read == 2
    assert second.files == 6
    assert second.new_chunks < first.new_chunks


def test_same_size_and_mtime_still_read(repository: Repository, tmp_path: Path) -> None:
    """A rewrite that keeps size and mtime is read again, because its ctime changed."""
    source = build_tree(tmp_path / "src")
    back_up(repository, [source], START)
    readme = source / "docs" / "readme.txt"
    readme.write_bytes(b"HELLO BACKUP\n")
    os.utime(readme, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))

    second = back_up(repository, [source], START + 60)
    Restorer(repository).restore(repository.load_snapshot(second.id), tmp_path / "out")

    assert second.files_read == 1
    assert (restored_root(tmp_path / "out", source) / "docs" / "readme.txt").read_bytes() == b"HELLO BACKUP\n"


def test_full_rereads_everything(repository: Repository, tmp_path: Path) -> None:
    """`full` reads every file again and still stores no new chunks for unchanged data."""
    source = build_tree(tmp_path / "src")
    back_up(repository, [source], START)

    again = back_up(repository, [source], START + 60, full=True)

    assert again.files_read == 6
    assert again.new_chunks == 0


def test_latest_and_old_snapshot(repository: Repository, tmp_path: Path) -> None:
    """The latest snapshot has the change, and the first one still restores the original tree."""
    source = build_tree(tmp_path / "src")
    first = back_up(repository, [source], START)
    expected_old = tree_state(build_tree(tmp_path / "expected", seed=1))
    (source / "random.bin").write_bytes(b"replaced")
    os.symlink("random.bin", source / "second-link")
    back_up(repository, [source], START + 60)
    restorer = Restorer(repository)

    restorer.restore(repository.latest_snapshot(), tmp_path / "latest")
    restorer.restore(repository.load_snapshot(first.id), tmp_path / "old")

    assert tree_state(restored_root(tmp_path / "latest", source)) == tree_state(source)
    assert tree_state(restored_root(tmp_path / "old", source)) == expected_old


def test_several_paths_one_snapshot(repository: Repository, tmp_path: Path) -> None:
    """Two roots in one set, one a single file, both restore to their own paths."""
    tree = build_tree(tmp_path / "tree")
    single = tmp_path / "single.conf"
    single.write_text("port = 8080\n")

    result = back_up(repository, [tree, single], START)
    Restorer(repository).restore(repository.load_snapshot(result.id), tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", tree)) == tree_state(tree)
    assert restored_root(tmp_path / "out", single).read_text() == "port = 8080\n"


def test_large_file_streams(repository: Repository, tmp_path: Path) -> None:
    """A file larger than one read block is stored in many chunks and restored exactly."""
    source = tmp_path / "big"
    source.mkdir()
    data = os.urandom(5 * 1024 * 1024 + 123)
    (source / "big.bin").write_bytes(data)

    result = back_up(repository, [source], START)
    Restorer(repository).restore(repository.load_snapshot(result.id), tmp_path / "out")

    assert (restored_root(tmp_path / "out", source) / "big.bin").read_bytes() == data
    assert len(repository.pack_ids()) > 10


def test_verify_ok(repository: Repository, tmp_path: Path) -> None:
    """A test restore of an intact snapshot matches the manifest."""
    result = back_up(repository, [build_tree(tmp_path / "src")], START)

    verified = verify_snapshot(repository, repository.load_snapshot(result.id), scratch=tmp_path)

    assert verified.status == "ok"
    assert verified.mismatches == []
    assert verified.checked == 12


def test_verify_damaged_chunk_fails(repository: Repository, tmp_path: Path) -> None:
    """A test restore that meets a damaged chunk fails and names the file, and compares the rest."""
    result = back_up(repository, [build_tree(tmp_path / "src")], START)
    snapshot = repository.load_snapshot(result.id)
    entry = next(entry for entry in snapshot.entries if entry.type == "file" and entry.chunks)
    location = repository.load_index()[bytes.fromhex(entry.chunks[0])]
    pack = pack_path(repository.path, location.pack_id)
    data = bytearray(pack.read_bytes())
    data[location.offset + location.length // 2] ^= 0xFF
    pack.write_bytes(bytes(data))

    verified = verify_snapshot(repository, snapshot, scratch=tmp_path)

    assert verified.status == "failed"
    assert len(verified.mismatches) == 1
    assert verified.mismatches[0].startswith(f"{entry.display_path()}: test restore failed: pack {location.pack_id}")
    assert verified.checked == 11


def test_repository_not_backed_up(repository: Repository, tmp_path: Path) -> None:
    """A set that contains the repository directory leaves the repository out."""
    (tmp_path / "note.txt").write_text("x")

    result = back_up(repository, [tmp_path], START)

    paths = [entry.path for entry in repository.load_snapshot(result.id).entries]
    assert not any(path.endswith(b"/repo") or b"/repo/" in path for path in paths)
    assert any(path.endswith(b"note.txt") for path in paths)


def test_rebuilt_index_restores(repository: Repository, tmp_path: Path) -> None:
    """After every index file is deleted, the index rebuilt from pack headers serves a restore."""
    source = build_tree(tmp_path / "src")
    result = back_up(repository, [source], START)
    for path in (repository.path / "index").iterdir():
        path.unlink()

    repository.rebuild_index()
    Restorer(repository).restore(repository.load_snapshot(result.id), tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)


@pytest.mark.parametrize("path", [b"../escape", b"/etc/passwd", b"a/../../b", b"a//b", b"./a"])
def test_unsafe_paths_rejected(repository: Repository, tmp_path: Path, path: bytes) -> None:
    """A manifest path with `..`, a leading slash or empty parts is rejected before any write."""
    snapshot = repository_snapshot_with(repository, path)

    with pytest.raises(UnsafeRestorePath):
        Restorer(repository).restore(snapshot, tmp_path / "out")

    assert not (tmp_path / "escape").exists()


def test_symlink_in_target_rejected(repository: Repository, tmp_path: Path) -> None:
    """A symlink already in the target that leads outside it stops the restore."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "file").write_text("data")
    result = back_up(repository, [source], START)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "out"
    target.mkdir()
    first_part = str(source.absolute()).lstrip("/").split("/")[0]
    os.symlink(outside, target / first_part)

    with pytest.raises(UnsafeRestorePath, match="leads outside"):
        Restorer(repository).restore(repository.load_snapshot(result.id), target)

    assert list(outside.iterdir()) == []


def test_symlink_at_restored_dir_replaced(repository: Repository, tmp_path: Path) -> None:
    """A symlink where the snapshot has a directory is replaced, not followed."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "file").write_text("data")
    result = back_up(repository, [source], START)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "out"
    restored = restored_root(target, source)
    restored.parent.mkdir(parents=True)
    os.symlink(outside, restored)

    Restorer(repository).restore(repository.load_snapshot(result.id), target)

    assert list(outside.iterdir()) == []
    assert not restored.is_symlink()
    assert (restored / "file").read_text() == "data"


def repository_snapshot_with(repository: Repository, path: bytes):
    from atlas_tui.backup.models import Snapshot

    entry = Entry(path=path, type="file", mode=0o644, uid=0, gid=0, mtime_ns=0)
    return Snapshot(id="backup_1_test", time=1, trigger="test", hostname="h", status="ok", entries=[entry])


def test_removed_tree_restores_elsewhere(repository: Repository, tmp_path: Path) -> None:
    """A snapshot restores after its source is deleted."""
    source = build_tree(tmp_path / "src")
    expected = tree_state(source)
    result = back_up(repository, [source], START)
    shutil.rmtree(source)

    Restorer(repository).restore(repository.load_snapshot(result.id), tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", source)) == expected


def test_second_backup_same_second(repository: Repository, tmp_path: Path) -> None:
    """Two runs started in the same second get distinct ids."""
    source = build_tree(tmp_path / "src")

    first = back_up(repository, [source], START)
    second = back_up(repository, [source], START + 0.5)

    assert first.id != second.id
    assert repository.snapshot_ids() == [first.id, second.id]


def test_open_needs_time(repository: Repository) -> None:
    """Opening with the passphrase gives the same master key."""
    from tests.backup.conftest import PASSPHRASE

    opened = Repository.open(repository.path, PASSPHRASE)

    assert opened.key == repository.key
    assert time.time() > START


def test_symlinked_root_followed(repository: Repository, tmp_path: Path) -> None:
    """A configured path that is a symlink to a directory backs up the directory's content."""
    real = build_tree(tmp_path / "real")
    alias = tmp_path / "alias"
    os.symlink(real, alias)

    result = back_up(repository, [alias], START)
    Restorer(repository).restore(repository.load_snapshot(result.id), tmp_path / "out")

    restored = restored_root(tmp_path / "out", alias)
    assert not restored.is_symlink()
    assert tree_state(restored) == tree_state(real)


def test_within_root_prefix() -> None:
    """The escape check accepts paths under `/` as inside a target of `/`, and rejects sibling prefixes."""
    assert is_within(b"/tmp", b"/")
    assert is_within(b"/srv/restore/a", b"/srv/restore")
    assert is_within(b"/srv/restore", b"/srv/restore")
    assert not is_within(b"/srv/restore-other/a", b"/srv/restore")
    assert not is_within(b"/etc", b"/srv/restore")


def test_small_file_replaced_after_walk(repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small file that becomes a FIFO or a symlink after the walk is stored as one, never read."""
    from atlas_tui.backup import archiver

    source = tmp_path / "src"
    source.mkdir()
    (source / "a-pipe").write_bytes(b"small\n")
    (source / "b-link").write_bytes(b"small\n")
    (source / "c-kept").write_bytes(b"small\n")
    original = archiver._Run.backup_sets

    def replace_then_back_up(self, specs, walk):
        (source / "a-pipe").unlink()
        os.mkfifo(source / "a-pipe")
        (source / "b-link").unlink()
        (source / "b-link").symlink_to("c-kept")
        return original(self, specs, walk)

    monkeypatch.setattr(archiver._Run, "backup_sets", replace_then_back_up)
    result = back_up(repository, [source], START)

    entries = {entry.path.rsplit(b"/", 1)[-1]: entry for entry in repository.load_snapshot(result.id).entries}
    assert result.status == "ok"
    assert result.files_read == 1
    assert entries[b"a-pipe"].type == "fifo"
    assert (entries[b"b-link"].type, entries[b"b-link"].link_target) == ("symlink", b"c-kept")
    assert entries[b"c-kept"].size == 6


def test_directory_replaced_after_walk(repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that becomes a file after the walk is skipped with its children, and the snapshot restores."""
    from atlas_tui.backup import archiver

    source = tmp_path / "src"
    (source / "flip").mkdir(parents=True)
    (source / "flip" / "in").write_bytes(b"inside\n")
    (source / "kept").write_bytes(b"kept\n")
    original = archiver._Run.backup_sets

    def replace_then_back_up(self, specs, walk):
        shutil.rmtree(source / "flip")
        (source / "flip").write_bytes(b"now a file\n")
        return original(self, specs, walk)

    monkeypatch.setattr(archiver._Run, "backup_sets", replace_then_back_up)
    result = back_up(repository, [source], START)

    snapshot = repository.load_snapshot(result.id)
    names = {entry.path.rsplit(b"/", 1)[-1] for entry in snapshot.entries}
    assert result.status == "partial"
    assert [skipped.path.rsplit("/", 1)[-1] for skipped in result.sets[0].skipped] == ["flip"]
    assert "directory when the run started" in result.sets[0].skipped[0].reason
    assert b"in" not in names
    assert b"flip" not in names
    Restorer(repository).restore(snapshot, tmp_path / "out")
    assert (restored_root(tmp_path / "out", source) / "kept").read_bytes() == b"kept\n"


def test_display_path_keeps_a_name_on_one_line() -> None:
    """Newlines, tabs and backslashes are escaped, bytes that are not UTF-8 too, and plain names stay as they are."""
    from atlas_tui.backup.models import display_path

    assert display_path(b"docs/readme.txt") == "docs/readme.txt"
    assert display_path(b"caf\xc3\xa9 \xe2\x82\xac") == "caf\u00e9 \u20ac"
    assert display_path(b"evil\n  skipped FAKE") == "evil\\n  skipped FAKE"
    assert display_path(b"tab\there\r") == "tab\\there\\r"
    assert display_path(b"bad\xff") == "bad\\xff"
    assert display_path(b"bad\\xff") == "bad\\\\xff"
    assert display_path(b"bell\x07") == "bell\\x07"


def test_restore_over_changed_types(repository: Repository, tmp_path: Path) -> None:
    """A restore over an older one replaces files by directories, and names a directory in the way of a file."""
    source = tmp_path / "src"
    (source / "x").mkdir(parents=True)
    (source / "x" / "inside.txt").write_text("inside\n")
    (source / "z").write_text("z was a file\n")
    (source / "l").symlink_to("z")
    first = back_up(repository, [source], START)
    shutil.rmtree(source / "x")
    (source / "x").write_text("x is a file now\n")
    (source / "z").unlink()
    (source / "z").mkdir()
    (source / "z" / "child.txt").write_text("child\n")
    (source / "l").unlink()
    (source / "l").write_text("l is a file now\n")
    second = back_up(repository, [source], START + 60)
    out = tmp_path / "out"
    restorer = Restorer(repository)
    restorer.restore(repository.load_snapshot(first.id), out)

    with pytest.raises(BackupError) as raised:
        restorer.restore(repository.load_snapshot(second.id), out)
    assert str(raised.value).startswith(f"{restored_root(out, source) / 'x'} in the restore target is a directory")
    assert "move or remove that directory, or restore into an empty target" in str(raised.value)
    shutil.rmtree(restored_root(out, source) / "x")
    restorer.restore(repository.load_snapshot(second.id), out)

    restored = restored_root(out, source)
    assert (restored / "x").read_text() == "x is a file now\n"
    assert (restored / "z" / "child.txt").read_text() == "child\n"
    assert not (restored / "l").is_symlink()
    assert (restored / "l").read_text() == "l is a file now\n"


def test_restore_target_is_file(repository: Repository, tmp_path: Path) -> None:
    """A target that exists as a file fails with a message naming it."""
    result = back_up(repository, [build_tree(tmp_path / "src")], START)
    target = tmp_path / "afile"
    target.write_text("not a directory\n")

    with pytest.raises(BackupError, match=f"restore target {target} exists and is not a directory"):
        Restorer(repository).restore(repository.load_snapshot(result.id), target)


def test_directory_in_way_of_symlink(repository: Repository, tmp_path: Path) -> None:
    """A directory in the target where the snapshot has a symlink stops the restore, naming the target path."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "link").symlink_to("elsewhere")
    result = back_up(repository, [source], START)
    out = tmp_path / "out"
    blocked = restored_root(out, source) / "link"
    blocked.mkdir(parents=True)

    with pytest.raises(UnsafeRestorePath) as raised:
        Restorer(repository).restore(repository.load_snapshot(result.id), out)

    assert str(raised.value).startswith(f"{blocked} in the restore target is a directory, and the snapshot has a symlink")
